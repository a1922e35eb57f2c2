"""Registration: the first reference from the first transients, each transient aligned to it (shift and
phase recovered), accepted ones joining it, and a run of rejections rebuilding it."""

import numpy as np
import pytest
from stage_helpers import clean_fid, noisy, shifted, transient_context

from mrs.pipeline.record import CacheRecord
from mrs.pipeline.register import REBUILD_AFTER_REJECTED, Register


def _ready(rng):
    records = []
    ctx, stage = transient_context(records), Register()
    ctx.emit = lambda rec: (records.append(rec), stage.apply(rec, ctx))
    fid = clean_fid()
    stage.prime(np.array([noisy(fid, 0.5, rng) for _ in range(8)]), ctx)
    return ctx, stage, records, fid


def test_shift_and_phase_are_recovered():
    rng = np.random.default_rng(2)
    ctx, stage, records, fid = _ready(rng)
    assert [r.kind for r in records] == ["reference"] and ctx.reference.ready
    aligned, est = stage.process(noisy(shifted(fid, 4.0, 0.6), 0.5, rng), ctx)
    assert est["freq_hz"] == pytest.approx(4.0, abs=0.1)
    assert est["phase_deg"] == pytest.approx(np.degrees(0.6), abs=3)
    assert np.abs(aligned - fid)[:200].mean() < 0.2 * np.abs(fid)[:200].mean()


def _transient(seq, freq, rejected, fid):
    return CacheRecord("transient", seq, 2.0 * seq, {"freq_hz": freq, "phase_deg": 0.0, "rejected": rejected},
                       {"fid": fid.astype(np.complex64)})


def test_accepted_transients_join_the_reference_and_a_run_of_rejections_rebuilds_it():
    rng = np.random.default_rng(3)
    ctx, stage, records, fid = _ready(rng)
    stage.apply(_transient(1, 0.1, None, fid), ctx)
    assert ctx.reference.n == 2 and ctx.freq_t == [(2.0, 0.1)]
    for seq in range(2, 2 + REBUILD_AFTER_REJECTED):
        stage.apply(_transient(seq, 0.0, "motion", 0.5 * fid), ctx)
        stage.after(ctx)
    assert [r.kind for r in records] == ["reference", "reference"] and records[-1].value("rebuild")
    assert ctx.reference.n == 1 and ctx.reference.run_rejected == []
    assert np.abs(ctx.reference.mean()).max() == pytest.approx(0.5 * np.abs(fid).max(), rel=0.01)
