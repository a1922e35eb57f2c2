"""Study analysis: summaries, the crossover condition effect against a known truth, local and Dask paths."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from agent.store import SessionWriter
from analysis.study import _paired, analyse, find_sessions, read_key, summarise_all, summarise_curve

BLOCK_S = 64.0
INFUSION_S = (600.0, 3000.0)    # 10 to 50 min
DURATION_S = 3600.0


def true_curve(t_s: np.ndarray, response_pct: float) -> np.ndarray:
    """Glu/tCr multiplier: rises over 10 min from 5 min into the infusion, back down after it."""
    x = np.clip((t_s - INFUSION_S[0] - 300.0) / 600.0, 0, 1)
    up = 0.5 * (1 - np.cos(np.pi * x))
    down = np.clip(1 - (t_s - INFUSION_S[1]) / 600.0, 0, 1)
    return 1 + response_pct / 100 * np.where(t_s <= INFUSION_S[1], up, up * down)


def make_study(root: Path, n: int, seed: int, effect_factor: float, noise_pct: float = 3.0):
    """Session folders holding only what the analysis reads (header, plan, events, fits), a key file,
    and the true estimand computed from the noise-free curves with the analysis's own summary."""
    rng = np.random.default_rng(seed)
    t = np.arange(BLOCK_S / 2, DURATION_S, BLOCK_S)
    plan = {"phases": [{"name": "baseline", "start_min": 0, "end_min": 10},
                       {"name": "infusion", "start_min": 10, "end_min": 50}], "measure": "Glu/tCr"}
    key, diffs = [], []
    for i in range(n):
        sex = "M" if i % 2 else "F"
        resp = max(0.0, rng.normal(6.0, 2.0))
        order = ("placebo", "naltrexone") if i % 2 == 0 else ("naltrexone", "placebo")
        truth = {}
        for period, cond in enumerate(order, start=1):
            kit = f"KIT-{seed}{i:03d}{period}"
            key.append((kit, cond, sex))
            r = resp * (effect_factor if cond == "naltrexone" else 1.0)
            clean = 1.2 * true_curve(t, r)
            truth[cond] = summarise_curve(t, clean, np.ones(t.size, bool), INFUSION_S)["mean_infusion_pct"]
            noisy = clean * (1 + rng.normal(0, noise_pct / 100, t.size))
            folder = root / f"s{seed}-{i:03d}-{period}"
            w = SessionWriter(folder, {"coils": 1, "points": 2048, "start_time_ns": 0, "session": folder.name,
                                       "subject": f"P{i:03d}", "session_code": f"ses-0{period}", "kit_code": kit},
                              plan, fsync=False)
            w.append_event({"seq": 1, "kind": "infusion_start", "t_ns": int(INFUSION_S[0] * 1e9)})
            w.append_event({"seq": 2, "kind": "infusion_stop", "t_ns": int(INFUSION_S[1] * 1e9)})
            w.commit()
            w.close()
            with open(folder / "fits.jsonl", "w") as f:
                for b, (tb, v) in enumerate(zip(t, noisy, strict=True)):
                    f.write(json.dumps({"block": b, "t_s": tb, "qc": {"fit_status": "ok"},
                                        "ratios": {"Glu/tCr": v, "Glx/tNAA": v * 1.1}}) + "\n")
        diffs.append(truth["naltrexone"] - truth["placebo"])
    with open(root / "key.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["kit_code", "condition", "sex"])
        w.writerows(key)
    return float(np.mean(diffs))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    truth = make_study(root / "sessions", n=26, seed=1, effect_factor=0.5)
    return root, truth


def test_summary_of_a_known_curve():
    t = np.arange(30.0, 3600.0, 60.0)
    s = summarise_curve(t, 2.0 * true_curve(t, 10.0), np.ones(t.size, bool), INFUSION_S)
    assert s["baseline"] == pytest.approx(2.0) and s["baseline_blocks"] == 10
    assert s["peak_pct"] == pytest.approx(10.0, abs=0.05)
    assert 15.0 <= s["time_to_peak_min"] <= 40.0     # the plateau: 15 to 40 min after the start
    # plateau over 25 of 40 min, half-height ramp over 10: mean = (0.5*10 + 25) / 40 * 10 %
    assert s["mean_infusion_pct"] == pytest.approx(7.5, abs=0.2)
    assert s["auc_pct_min"] == pytest.approx(s["mean_infusion_pct"] * 39.0, rel=0.03)


def test_crossover_effect_covers_the_truth_and_excludes_zero(study):
    root, truth = study
    summaries = summarise_all(find_sessions(root / "sessions"), workers=2)
    result = analyse(summaries, read_key(root / "sessions" / "key.tsv"))
    ce = result["condition_effect"]
    assert result["sessions"] == 52 and ce["n_pairs"] == 26 and ce["contrast"] == "naltrexone - placebo"
    assert ce["ci95_low"] <= truth <= ce["ci95_high"]
    assert ce["ci95_high"] < 0 and ce["p"] < 0.05
    mm = result["mixed_model"]
    assert mm["n_subjects"] == 26 and "condition[naltrexone]" in mm["coefficients"]
    assert "period[2]" in mm["coefficients"] and "sex[M]" in mm["coefficients"]
    assert result["paired_auc"]["estimate"] < 0


def test_confidence_interval_coverage_over_repeated_studies(tmp_path):
    """Over 40 simulated studies of 8 participants the 95 % CI covers the truth about 95 % of the time."""
    covered = 0
    for seed in range(40):
        root = tmp_path / f"st{seed}"
        truth = make_study(root, n=8, seed=100 + seed, effect_factor=0.5, noise_pct=4.0)
        summaries = summarise_all(find_sessions(root), workers=1)
        key = read_key(root / "key.tsv")
        diffs = {}
        for s in summaries:
            diffs.setdefault(s["subject"], {})[key[s["kit_code"]]["condition"]] = \
                s["measures"]["Glu/tCr"]["mean_infusion_pct"]
        p = _paired(np.array([d["naltrexone"] - d["placebo"] for d in diffs.values()]))
        covered += p["ci95_low"] <= truth <= p["ci95_high"]
    assert covered >= 34  # binomial(40, 0.95): P(X < 34) < 1 %


def test_dask_cluster_gives_the_same_summaries(study):
    from dask.distributed import LocalCluster

    root, _ = study
    paths = find_sessions(root / "sessions")[:6]
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        remote = summarise_all(paths, scheduler=cluster.scheduler_address)
    local = summarise_all(paths, workers=1)
    assert remote == local


def test_study_cli_prints_json_with_the_condition_effect(study, tmp_path):
    import subprocess
    import sys

    root, truth = study
    out = subprocess.run([sys.executable, "-m", "mrsmon", "study", str(root / "sessions"), "--key",
                          str(root / "sessions" / "key.tsv"), "--out", str(tmp_path / "res"), "--json"],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    assert result["sessions"] == 52 and len(result["summaries"]) == 52
    assert set(result["condition_effect"]) >= {"estimate", "ci95_low", "ci95_high", "p"}
    assert (tmp_path / "res" / "study.png").stat().st_size > 10_000
    with open(tmp_path / "res" / "sessions.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 52 and {r["condition"] for r in rows} == {"placebo", "naltrexone"}


def test_blinded_study_without_key_has_no_condition_effect(study):
    root, _ = study
    result = analyse(summarise_all(find_sessions(root / "sessions")[:4], workers=1))
    assert result["condition_effect"] is None and "condition" not in result["summaries"][0]


def test_study_can_analyse_a_derivative_set(study, tmp_path):
    import shutil

    from analysis.study import StudyError, summarise_session

    root, _ = study
    src = Path(find_sessions(root / "sessions")[0])
    folder = tmp_path / src.name
    shutil.copytree(src, folder)
    with pytest.raises(StudyError, match="no derivative set"):
        summarise_session(str(folder), derivative="refit-dynamic-001")
    deriv = folder / "derivatives" / "refit-dynamic-001"
    deriv.mkdir(parents=True)
    rows = [json.loads(line) for line in (folder / "fits.jsonl").read_text().splitlines()]
    for r in rows:  # a derivative with every ratio 10 % higher: the percent changes are unchanged
        r["ratios"] = {k: 1.1 * v for k, v in r["ratios"].items()}
    (deriv / "fits.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    a = summarise_session(str(folder))["measures"]["Glu/tCr"]
    b = summarise_session(str(folder), derivative="refit-dynamic-001")["measures"]["Glu/tCr"]
    assert b["baseline"] == pytest.approx(1.1 * a["baseline"])
    assert b["mean_infusion_pct"] == pytest.approx(a["mean_infusion_pct"])
