"""Eddy-current correction: the phase of the water reference that fixed the coil weights is removed from
every transient; a later water reference or none leaves nothing to correct."""

import numpy as np
from stage_helpers import T, transient_context

from mrs.pipeline.eddy import EddyCorrection
from mrs.pipeline.record import CacheRecord


def _eddy_phase():
    return 0.8 * np.exp(-T / 0.02)  # rad: decays over ~20 ms


def test_the_water_phase_is_taken_and_removed():
    water = 1000 * np.exp(-np.pi * 5 * T + 1j * _eddy_phase())
    ctx, stage = transient_context(), EddyCorrection()
    ctx.new_state = True  # this water reference fixed the weights
    stage.scan("water_ref", water, ctx)
    assert ctx.eddy is not None
    metab = 20 * np.exp(2j * np.pi * -300 * T - np.pi * 4 * T + 1j * _eddy_phase())
    corrected, estimates = stage.process(metab, ctx)
    assert estimates == {}
    early = slice(1, 200)  # the eddy phase is gone (its linear trend is left to the alignment)
    assert np.ptp(np.unwrap(np.angle(corrected[early])) - 2 * np.pi * -300 * T[early]) < 0.05
    fresh = transient_context()
    stage.apply(CacheRecord("state", arrays=stage.state(ctx)), fresh)
    assert np.array_equal(fresh.eddy, ctx.eddy)


def test_no_phase_without_a_water_reference_first():
    ctx, stage = transient_context(), EddyCorrection()
    stage.scan("water_ref", np.exp(-T * 20 + 1j * _eddy_phase()), ctx)  # weights were fixed before: no
    fid = np.exp(-T * 10).astype(complex)
    assert ctx.eddy is None and stage.process(fid, ctx)[0] is fid and stage.state(ctx) == {}
