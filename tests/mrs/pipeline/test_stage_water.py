"""Residual water per transient: a burst is removed and the transient marked for a smooth-insensitive
registration only if it still dominates; a clean transient passes untouched."""

import numpy as np
from stage_helpers import T, clean_fid, transient_context

from mrs.pipeline.context import Grid
from mrs.pipeline.water import ResidualWater
from mrs.preproc.water import water_dominates
from tests.mrs.pipeline.test_runner import ACQ


def test_a_water_burst_is_removed_and_a_clean_transient_is_not_touched():
    ctx, stage = transient_context(), ResidualWater()
    g = Grid.from_acquisition(ACQ)
    fid = clean_fid()
    out, est = stage.process(fid, ctx)
    assert out is fid and {k: est[k] for k in ("water_dominates", "water_removed")} == {
        "water_dominates": False, "water_removed": False}
    dry_height = est["water_height"]
    wet = fid + 50 * np.abs(fid).max() * np.exp(-np.pi * 14 * T + 0.7j)  # water at the receiver centre
    assert water_dominates(wet, g.dwell_s, g.cf_mhz, g.centre_ppm)
    out, est = stage.process(wet, ctx)
    assert {k: est[k] for k in ("water_dominates", "water_removed")} == {
        "water_dominates": False, "water_removed": True}
    assert est["water_height"] > 20 * dry_height  # measured before the removal: how poor the suppression was
    assert not water_dominates(out, g.dwell_s, g.cf_mhz, g.centre_ppm)
    metab = (g.ppm() > 1.8) & (g.ppm() < 4.0)  # the metabolites are back as they were
    spec, ref = np.fft.fft(out), np.fft.fft(fid)
    assert np.abs(spec - ref)[metab].max() < 0.05 * np.abs(ref)[metab].max()
