"""Today's code gives the golden numbers on the benchmark sessions, along every path
(tests/data/golden/README.md): no change of code alters a result unless it is meant to."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
from golden_sessions import SESSIONS, session_results

GOLDEN = Path(__file__).parents[1] / "data" / "golden" / "results.json.gz"
LEGACY_ALARMS = {"naa_fwhm", "drift", "jump", "glu_crlb"}  # the rules main had; the rule book has more


def normalise(obj):
    """What the format changed, not the numbers: schema 2 adds `schema`, alarms became {name, severity,
    reason} and gained rules, and a key absent equals a key that is null."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "schema" or v is None:
                continue
            if k == "alarms" and isinstance(v, list):
                v = sorted({a["name"] if isinstance(a, dict) else a for a in v} & LEGACY_ALARMS)
            out[k] = normalise(v)
        return out
    if isinstance(obj, list):
        return [normalise(v) for v in obj]
    return obj


def _differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in {'golden' if k in a else 'today'}" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += _differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items in golden, {len(b)} today"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b and type(a) is type(b) else [f"{path}: golden {a!r}, today {b!r}"]


@pytest.fixture(scope="module")
def golden():
    return json.loads(gzip.decompress(GOLDEN.read_bytes()))


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_results_equal_the_golden_ones(name, golden, tmp_path):
    today = json.loads(json.dumps(session_results(name, tmp_path)))  # as stored: through JSON
    diffs = _differences(normalise(golden[name]), normalise(today))
    assert not diffs, f"{len(diffs)} differences, first: " + "; ".join(diffs[:8])
