"""Water removal in the block average: HLSVD where the water dominates the metabolites, and wherever a
water line stands inside the fit window, which then ends below it (decided before the fitter exists)."""

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
    assert ctx.window_ppm == (0.2, 4.2) and ctx.window_narrowed is None


def _line_at(fid: np.ndarray, ppm: float, cf_mhz: float) -> np.ndarray:
    line = np.exp((2j * np.pi * (ppm - 4.65) * cf_mhz - np.pi * 15) * T)
    return 8 * np.abs(np.fft.fft(fid)).max() / np.abs(np.fft.fft(line)).max() * line


def test_water_inside_the_window_ends_it_until_the_fitter_is_built():
    ctx = block_context(None)
    fid = clean_fid()
    out, est = WaterRemoval().process(fid + _line_at(fid, 4.15, ctx.grid.cf_mhz), ctx)
    assert est["water_removed"] >= 1
    lo, hi = ctx.window_narrowed
    assert lo == 0.2 and 3.7 < hi < 3.95
    later = block_context(None)
    later.end_window_below(3.5)
    assert later.fitter.settings.window_ppm == (0.2, 3.5)
    later.end_window_below(3.0)  # once the fitter exists the session's window stays
    assert later.window_narrowed == (0.2, 3.5) and later.fitter.settings.window_ppm == (0.2, 3.5)
