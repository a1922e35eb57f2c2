"""simulate-study end to end: blinded stored sessions, a key outside them, and a recoverable effect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.simulate_study import design, simulate_study
from analysis.study import run_study

SHORT_PLAN = Path(__file__).parent / "data" / "study-short.toml"


def test_design_is_a_counterbalanced_crossover():
    rows = design(6, seed=3, response_pct=5.0, response_sd_pct=1.0)
    assert len(rows) == 12 and len({r["kit_code"] for r in rows}) == 12
    first = [r["condition"] for r in rows if r["period"] == 1]
    assert first.count("placebo") == first.count("naltrexone") == 3
    for subj in {r["subject"] for r in rows}:
        conds = {r["condition"] for r in rows if r["subject"] == subj}
        assert conds == {"placebo", "naltrexone"}


def _assert_blinded(out: Path) -> None:
    for folder in (out / "sessions").iterdir():
        for name in ("session.json", "plan.json", "events.jsonl", "end.json"):
            text = (folder / name).read_text().lower()
            assert "placebo" not in text and "naltrexone" not in text, (folder, name)
        assert json.loads((folder / "session.json").read_text())["kit_code"].startswith("KIT-")
    assert (out / "key.tsv").exists() and not list((out / "sessions").rglob("key.tsv"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_small_simulated_study_runs_end_to_end(tmp_path):
    """Two participants of 3-minute sessions: stored, fitted, blinded; the study runs on them."""
    from study_plans import MINI

    plan_path = tmp_path / "mini.toml"
    plan_path.write_text(_toml(MINI))
    out = tmp_path / "study"
    truth = simulate_study(out, participants=2, seed=2, protocol=str(plan_path), workers=2)
    _assert_blinded(out)
    assert truth["condition_effect"] < 0 and len(truth["sessions"]) == 4
    for folder in (out / "sessions").iterdir():
        assert (folder / "fits.jsonl").stat().st_size > 0 and (folder / "end.json").exists()
    result = run_study(out / "sessions", out / "key.tsv", out_dir=tmp_path / "results")
    assert result["sessions"] == 4 and result["condition_effect"]["n_pairs"] == 2


def _toml(d: dict, prefix: str = "") -> str:
    """Just enough TOML for the plan dictionaries used here."""
    def val(v):
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)

    lines = [f"{k} = {val(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {val(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_simulated_crossover_of_26_recovers_the_condition_effect(tmp_path):
    """26 participants x 2 short sessions (16 min, 2 coils): the CI covers the simulated effect and
    excludes zero. About 5 min on 2 busy cores."""
    out = tmp_path / "study"
    truth = simulate_study(out, participants=26, seed=1, protocol=str(SHORT_PLAN))
    _assert_blinded(out)
    result = run_study(out / "sessions", out / "key.tsv", out_dir=tmp_path / "results")
    ce = result["condition_effect"]
    print(f"condition effect {ce['estimate']:+.2f} [{ce['ci95_low']:+.2f}, {ce['ci95_high']:+.2f}], "
          f"truth {truth['condition_effect']:+.2f}")
    assert result["sessions"] == 52 and ce["n_pairs"] == 26
    assert ce["ci95_low"] <= truth["condition_effect"] <= ce["ci95_high"]
    assert ce["ci95_high"] < 0
