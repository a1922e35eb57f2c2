"""The linear-combination fit of the block average (mrs.fit.LCFitter), warm-started from the previous
block; with a session reference (mrs/pipeline/blocks.py) the session's lineshape details are held."""

from __future__ import annotations

import time

import numpy as np

from mrs.pipeline.stage import BlockFailed, BlockStage
from mrs.results import _num


class Fit(BlockStage):
    name = "fit"

    def process(self, avg: np.ndarray, ctx):
        fitter = ctx.fitter
        if fitter is None:
            raise BlockFailed(ctx.fitter_error or "no fitter")
        t0 = time.perf_counter()
        if ctx.session_x is not None:
            hold = fitter.session_mask()
            x0 = ctx.session_x if ctx.x_prev is None else np.where(hold, ctx.session_x, ctx.x_prev)
            res = fitter.fit(avg, x0=x0, hold=hold)
            reference = "session"
        else:
            res = fitter.fit(avg, x0=ctx.x_prev)
            reference = "provisional" if ctx.reference_blocks else "block"
            if ctx.stiffer_fitters and not ctx.one_model:  # built only for blocks fitted on their own
                from mrs.fit.baseline_average import average

                knots = (fitter.settings.baseline_knot_spacing_ppm,
                         *(f.settings.baseline_knot_spacing_ppm for f in ctx.stiffer_fitters))
                res = average([res, *(f.fit(avg, x0=ctx.x_prev) for f in ctx.stiffer_fitters)], fitter.dnu, knots)
        fit_ms = (time.perf_counter() - t0) * 1e3
        ctx.fitted = (avg, res)
        if res.success:
            ctx.x_prev = res.x
        return res, {"fit_ms": _num(fit_ms, 3), "reference": reference,
                     "fit_shift_hz": _num(res.params.get("shift_hz_met"), 4), "fit_nfev": res.nfev,
                     "phase_deg": _num(np.degrees(res.phase0_rad), 3),
                     "fit_window_ppm": ctx.window_narrowed,
                     "baseline_knots_ppm": res.baseline_knots_ppm or None}
