"""Water removal in the block average: HLSVD only when the water dominates the metabolites."""

import numpy as np
from stage_helpers import T, block_context, clean_fid

from mrs.pipeline.water_removal import WaterRemoval


def test_dominant_water_is_removed_and_a_clean_average_left_alone():
    ctx = block_context(None)
    fid = clean_fid()
    out, est = WaterRemoval().process(fid, ctx)
    assert out is fid and est == {"water_removed": 0}
    wet = fid + 20 * np.abs(fid).max() * np.exp(-np.pi * 10 * T)
    out, est = WaterRemoval().process(wet, ctx)
    assert est["water_removed"] >= 1
    spec, ref = np.fft.fft(out), np.fft.fft(fid)
    metab = (ctx.grid.ppm() > 1.8) & (ctx.grid.ppm() < 4.0)  # the metabolites are back as they were
    assert np.abs(spec - ref)[metab].max() < 0.05 * np.abs(ref)[metab].max()
