"""Today's code gives the golden numbers on the benchmark sessions, along every path
(tests/data/golden/README.md): no change of code alters a result unless it is meant to.

Every value but a float must be equal. Floats may differ by floating-point rounding: another CPU or
numpy/scipy build rounds differently and the nonlinear fit carries that along (a new machine moved
17,500 floats by a median 1.4e-7, the largest 9e-4 on an entry of CRLB 2000 %). A change of code moves
far more: so each float may differ by at most MAX_REL, a concentration and its CRLB also by up to
1 % of their own SD (an entry of CRLB 1130 % moved by 7.6e-3 when BLAS ran on two threads instead of
one), and the 99th percentile of all floats' relative differences must stay below P99_REL. The
optimiser's step count (`qc.fit_nfev`) may move by COUNT_SLACK steps, no other integer."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
from golden_sessions import SESSIONS, session_results

GOLDEN = Path(__file__).parents[1] / "data" / "golden" / "results.json.gz"
LEGACY_ALARMS = {"naa_fwhm", "drift", "jump", "glu_crlb"}  # the rules main had; the rule book has more
MAX_REL = 5e-3  # per float: 5x the largest rounding difference seen between machines
P99_REL = 1e-4  # over all floats: rounding gave 1e-5 to 2e-5
# Optimiser step counts: a rounding difference at a stopping test adds or saves a step or two
# (the result moves within rounding); a change of code moves them by more, and its floats too.
COUNT_SLACK = {"fit_nfev": 2}


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


def _sd_tolerances(result: dict) -> dict[str, float]:
    """Relative tolerance per metabolite of a block result: MAX_REL, or 1 % of its relative SD."""
    crlb = result.get("crlb_pct") if isinstance(result.get("conc"), dict) else None
    if not isinstance(crlb, dict):
        return {}
    return {k: max(MAX_REL, 1e-4 * v) for k, v in crlb.items() if isinstance(v, float) and math.isfinite(v)}


def _differences(a, b, path: str = "", rel: list | None = None, tol: float = MAX_REL,
                 child_tol: dict[str, float] | None = None) -> list[str]:
    """Paths where `a` and `b` differ beyond rounding (floats: relative `tol`; `child_tol` per key
    of a dict's children); the relative difference of every float compared is appended to `rel`."""
    rel = [] if rel is None else rel
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in {'golden' if k in a else 'today'}" for k in sorted(set(a) ^ set(b))]
        by_sd = _sd_tolerances(a)
        for k in sorted(set(a) & set(b)):
            if k in COUNT_SLACK and isinstance(a[k], int) and isinstance(b[k], int):
                if abs(a[k] - b[k]) > COUNT_SLACK[k]:
                    out.append(f"{path}/{k}: golden {a[k]!r}, today {b[k]!r}")
                continue
            sub = by_sd if k in ("conc", "crlb_pct") else None
            out += _differences(a[k], b[k], f"{path}/{k}", rel, (child_tol or {}).get(k, MAX_REL), sub)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items in golden, {len(b)} today"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]", rel)]
    if isinstance(a, float) and isinstance(b, float):
        if not (math.isfinite(a) and math.isfinite(b)):
            same = a == b or (math.isnan(a) and math.isnan(b))
            return [] if same else [f"{path}: golden {a!r}, today {b!r}"]
        r = abs(a - b) / max(abs(a), abs(b), 1e-300)
        rel.append(r)
        return [] if r <= tol else [f"{path}: golden {a!r}, today {b!r} (relative {r:.1e})"]
    return [] if a == b and type(a) is type(b) else [f"{path}: golden {a!r}, today {b!r}"]


def _p99(rel: list[float]) -> float:
    return float(np.quantile(rel, 0.99)) if rel else 0.0


@pytest.fixture(scope="module")
def golden():
    return json.loads(gzip.decompress(GOLDEN.read_bytes()))


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_results_equal_the_golden_ones(name, golden, tmp_path):
    today = json.loads(json.dumps(session_results(name, tmp_path)))  # as stored: through JSON
    rel: list[float] = []
    diffs = _differences(normalise(golden[name]), normalise(today), rel=rel)
    assert not diffs, f"{len(diffs)} differences, first: " + "; ".join(diffs[:8])
    assert _p99(rel) < P99_REL, f"floats moved beyond rounding: 99th percentile relative difference {_p99(rel):.1e}"


def test_comparison_tolerates_rounding_only():
    golden = {"a": [1.0, 2.0, float("nan"), "x", 3], "b": {"c": 0.5}}
    rounded = {"a": [1.0 + 1e-9, 2.0, float("nan"), "x", 3], "b": {"c": 0.5 * (1 + 1e-6)}}
    rel: list[float] = []
    assert _differences(golden, rounded, rel=rel) == [] and _p99(rel) < P99_REL
    assert _differences(golden, {**rounded, "b": {"c": 0.51}})  # a 2 % change
    assert _differences(golden, {**rounded, "a": [1.0, 2.0, float("nan"), "y", 3]})  # not a float: exact
    assert _differences(golden, {**rounded, "a": [1.0, 2.0, 0.0, "x", 3]})  # NaN is not a number
    # a concentration may move by 1 % of its own SD: 5 % at a CRLB of 1000 %, not 1 % at 5 %
    block = {"conc": {"Ala": 1.0, "Glu": 10.0}, "crlb_pct": {"Ala": 1000.0, "Glu": 5.0}}
    assert _differences(block, {"conc": {"Ala": 1.05, "Glu": 10.0}, "crlb_pct": {"Ala": 1000.0, "Glu": 5.0}}) == []
    assert _differences(block, {"conc": {"Ala": 1.0, "Glu": 10.1}, "crlb_pct": {"Ala": 1000.0, "Glu": 5.0}})
    assert _differences(block, {"conc": {"Ala": 1.2, "Glu": 10.0}, "crlb_pct": {"Ala": 1000.0, "Glu": 5.0}})
    # an optimiser step count may move by a step or two, no other integer at all
    assert _differences({"qc": {"fit_nfev": 40}}, {"qc": {"fit_nfev": 42}}) == []
    assert _differences({"qc": {"fit_nfev": 40}}, {"qc": {"fit_nfev": 43}})
    assert _differences({"n_rejected": 4}, {"n_rejected": 5})
    # many small moves, each within MAX_REL: caught by the percentile
    many = {f"k{i}": 1.0 for i in range(200)}
    rel = []
    assert _differences(many, {k: 1.001 for k in many}, rel=rel) == [] and _p99(rel) > P99_REL
