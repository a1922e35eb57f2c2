"""Benchmark sessions whose results are kept as golden files (tests/data/golden/), and the code that
computes those results with whatever mrsmon is importable.

    python tests/support/golden_sessions.py OUT.json      # run from the checkout whose results you want

The files in tests/data/golden/ were made this way from main 1ee291b (before the pipeline became
stages, issue 13), from a plain checkout of that commit; tests/analysis/test_golden_results.py checks
that today's code gives the same numbers. Regenerate them only for a change meant to alter numbers,
and say so in the commit.

Every path a result can take is run: the primary fit of a stored session (as the agent's pipeline
would), the live pipeline fed note by note, refits from the preprocessing cache and from raw.log
(blocks, sliding windows, the dynamic fit), and `mrsmon fit` on the NIfTI-MRS export.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # as every mrsmon command
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from study_plans import MINI  # noqa: E402

# Keys that hold times measured while running, not results.
VOLATILE = {"fit_ms", "latency_ms", "pub_seq"}


def _mini(**changes) -> dict:
    raw = json.loads(json.dumps(MINI))
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values}
    return raw


SESSIONS: dict[str, dict[str, Any]] = {
    # the analysis tests' 3-minute session: water reference, noise and dummy scans, one motion event
    "mini": {"plan": _mini(), "seed": 11, "coils": 2},
    # restless: motion, residual-water bursts, a channel turning noisy, a larger array
    "restless": {"plan": _mini(timeline={"duration_min": 4.0},
                               simulation={"motion_events": 3, "motion_severity": 2.5,
                                           "residual_water_bursts_per_h": 60.0,
                                           "coil_failures": [{"coil": 1, "at_min": 2.0, "mode": "noisy",
                                                              "noise_factor": 25.0}]}),
                 "seed": 5, "coils": 4},
}


def _imports():
    """The functions this checkout offers, wherever they live (main before or after issue 13)."""
    try:
        from analysis.export import export_session
        from analysis.refit import refit
        from analysis.simulate_study import write_session
    except ImportError:  # main before issue 13
        from agent.export import export_session
        from agent.refit import refit

        from mrsmon.commands.simulate_study import write_session
    from agent.pipeline import Pipeline
    from mrsmon.commands.fit import fit_file
    return write_session, refit, export_session, Pipeline, fit_file


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if k not in VOLATILE and k != "spectrum"}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _spectra(folder: Path) -> dict[str, dict[str, float]]:
    """A checksum per stored block spectrum: the sum of each array (float64)."""
    out = {}
    for p in sorted((folder / "spectra").glob("*.npz")):
        with np.load(p) as z:
            out[p.stem] = {k: float(np.asarray(z[k], np.float64).sum()) for k in sorted(z.files)}
    return out


def _live(Pipeline, src: Path, tmp: Path) -> list[dict]:
    """The agent's pipeline fed note by note, as ingest does, on a copy of the raw data."""
    folder = tmp / "live" / src.name
    folder.mkdir(parents=True)
    for name in ("session.json", "plan.json", "raw.log", "index.bin", "events.jsonl", "end.json"):
        if (src / name).exists():
            shutil.copy2(src / name, folder / name)
    published: list[dict] = []
    pipe = Pipeline(lambda topic, obj: published.append(obj) if topic == "result" else None)
    index = np.fromfile(folder / "index.bin", np.dtype([("seq", "<u8"), ("offset", "<u8"), ("t_ns", "<i8"),
                                                        ("flags", "<u4"), ("scan", "<u4")]))
    bits = {1: "water_ref", 2: "noise", 4: "dummy"}
    sid = json.loads((folder / "session.json").read_text())["session"]
    for row in sorted(index, key=lambda r: int(r["seq"])):
        flags = sorted(name for bit, name in bits.items() if int(row["flags"]) & bit)
        pipe.handle_safely({"kind": "transient", "session": sid, "folder": str(folder), "seq": int(row["seq"]),
                            "offset": int(row["offset"]), "t_ns": int(row["t_ns"]), "flags": frozenset(flags)})
    pipe.handle_safely({"kind": "end", "session": sid, "folder": str(folder)})
    pipe.close()
    return _clean(published)


def session_results(name: str, tmp: Path) -> dict[str, Any]:
    write_session, refit, export_session, Pipeline, fit_file = _imports()
    from protocols.plan import plan_from_dict

    spec = SESSIONS[name]
    folder = tmp / name
    write_session(folder, plan_from_dict(spec["plan"], source="golden"), seed=spec["seed"], coils=spec["coils"],
                  subject=f"gold {name}", session_code="ses-01", start_time_ns=1_700_000_000_000_000_000)
    out: dict[str, Any] = {"fits": _clean(_rows(folder / "fits.jsonl")),
                           "transients": _rows(folder / "transients.jsonl"), "spectra": _spectra(folder)}
    for label, kwargs in (("refit_block16_cache", {"block": 16}),
                          ("refit_window12_step4_raw", {"window": 12, "step": 4, "use_cache": False}),
                          ("refit_dynamic", {"dynamic": True})):
        try:
            out[label] = _clean(_rows(refit(folder, **kwargs) / "fits.jsonl"))
        except ValueError as exc:  # a refit that cannot run must fail the same way
            out[label] = {"error": str(exc)}
    out["live"] = _live(Pipeline, folder, tmp)
    bids = tmp / "bids"
    sub = export_session(folder, bids)
    svs = next(sub.rglob("*_svs.nii.gz"))
    ref = next(sub.rglob("*_mrsref.nii.gz"), None)
    fits = fit_file(str(svs), block=8, water_path=str(ref) if ref else None)
    out["fit_nifti"] = _clean([r.to_json() if hasattr(r, "to_json") else r for r in fits])
    return out


def all_results() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return {name: session_results(name, Path(tmp)) for name in SESSIONS}


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(all_results(), indent=0, sort_keys=True) + "\n")
