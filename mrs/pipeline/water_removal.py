"""Residual water in the block average: removed by HLSVD where it dominates the metabolites, and,
wherever it sits inside the fit window, removed and kept out of the window."""

from __future__ import annotations

import numpy as np

from mrs.pipeline.stage import BlockStage
from mrs.preproc.water import remove_block_water


class WaterRemoval(BlockStage):
    name = "water_removal"

    def process(self, avg: np.ndarray, ctx) -> tuple[np.ndarray, dict]:
        g = ctx.grid
        out = remove_block_water(avg, g.dwell_s, g.cf_mhz, g.centre_ppm)
        if out.edge_ppm is not None:
            ctx.end_window_below(out.edge_ppm)
        return out.fid, {"water_removed": out.removed}
