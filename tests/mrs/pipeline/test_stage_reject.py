"""Rejection: a transient unlike the reference is rejected with a reason; the outlier history changes only
when a record is applied (so a cache replay rebuilds it), and a rebuilt reference starts it again."""

import numpy as np
from stage_helpers import T, clean_fid, noisy, transient_context

from mrs.pipeline.record import CacheRecord
from mrs.pipeline.reject import Reject


def _setup(rng):
    ctx = transient_context()
    fid = clean_fid()
    ctx.reference.set(np.mean([noisy(fid, 0.5, rng) for _ in range(8)], axis=0))
    return ctx, Reject(ctx.grid, ctx.aligner), fid


def _judge(stage, ctx, fid):
    ctx.unaligned, ctx.estimates = fid, {"scale": 1.0, "freq_hz": 0.0}
    return stage.process(fid, ctx)[1]


def test_clean_transients_pass_and_a_lipid_burst_is_rejected():
    rng = np.random.default_rng(4)
    ctx, stage, fid = _setup(rng)
    for seq in range(12):
        est = _judge(stage, ctx, noisy(fid, 0.5, rng))
        assert est["rejected"] is None
        stage.apply(CacheRecord("transient", seq, values={**est, "freq_hz": 0.0}), ctx)
    lipid = noisy(fid, 0.5, rng) + 30 * np.exp(2j * np.pi * (1.3 - 4.65) * 123.25 * T - np.pi * 15 * T)
    assert _judge(stage, ctx, lipid)["rejected"] in ("lipid", "motion")


def test_the_history_moves_only_with_applied_records():
    rng = np.random.default_rng(5)
    ctx, stage, fid = _setup(rng)
    x = noisy(fid, 0.5, rng)
    assert _judge(stage, ctx, x) == _judge(stage, ctx, x)  # deciding twice changes nothing
    assert len(stage.detector._res) == 0
    stage.apply(CacheRecord("transient", 1, values={"freq_hz": 0.0, "residual_ratio": 1.0, "lipid_ratio": 1.0,
                                                      "rejected": None}), ctx)
    assert len(stage.detector._res) == 1
    stage.apply(CacheRecord("reference", values={"rebuild": True}, arrays={"fid": fid}), ctx)
    assert len(stage.detector._res) == 0


def test_outlier_settings_are_its_own_and_reach_the_detector():
    ctx = transient_context()
    assert Reject(ctx.grid, ctx.aligner, max_jump_hz=9.0).detector.max_jump_hz == 9.0
    assert Reject(ctx.grid, ctx.aligner).settings == {"max_jump_hz": 6.0}
