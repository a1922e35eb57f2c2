"""Residual water in the block average: removed by HLSVD only when it dominates the metabolites."""

from __future__ import annotations

import numpy as np

from mrs.pipeline.stage import BlockStage
from mrs.preproc.water import remove_water, water_dominates


class WaterRemoval(BlockStage):
    name = "water_removal"

    def process(self, avg: np.ndarray, ctx) -> tuple[np.ndarray, dict]:
        g = ctx.grid
        removed = 0
        if water_dominates(avg, g.dwell_s, g.cf_mhz, g.centre_ppm, factor=3.0):
            avg, removed = remove_water(avg, g.dwell_s, g.cf_mhz, g.centre_ppm, n_points=256)
        return avg, {"water_removed": removed}
