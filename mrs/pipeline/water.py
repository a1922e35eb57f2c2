"""Residual water per transient: a burst of residual water (HLSVD-removed here) would corrupt the
shift, the scale and the running reference. Searched where water sits now: the drift moves it with
the metabolites (a fixed band would, after a large drift, take a metabolite line for water)."""

from __future__ import annotations

import numpy as np

from mrs.pipeline.stage import TransientStage
from mrs.preproc.water import DOMINANT_FACTOR, remove_water, water_dominates, water_peak


class ResidualWater(TransientStage):
    name = "water"

    def process(self, data: np.ndarray, ctx) -> tuple[np.ndarray, dict]:
        g = ctx.grid
        centre_now = g.centre_ppm - ctx.recent_shift_hz() / g.cf_mhz
        water, metabolites = water_peak(data, g.dwell_s, g.cf_mhz, centre_now)
        removed = wet = water > DOMINANT_FACTOR * metabolites
        if wet:
            data, _ = remove_water(data, g.dwell_s, g.cf_mhz, centre_now, n_points=256)
            wet = water_dominates(data, g.dwell_s, g.cf_mhz, centre_now)
        # still wet: the registration then ignores smooth spectral components (mrs/preproc/align.py)
        # the height before removal: how well the scanner suppresses water (qc.residual_water)
        return data, {"water_dominates": bool(wet), "water_removed": bool(removed), "water_height": water}


def without_dominant_water(fid: np.ndarray, grid, centre_ppm: float | None = None) -> np.ndarray:
    """The FID with its residual water removed where the water dominates (else unchanged)."""
    centre = grid.centre_ppm if centre_ppm is None else centre_ppm
    if water_dominates(fid, grid.dwell_s, grid.cf_mhz, centre):
        fid, _ = remove_water(fid, grid.dwell_s, grid.cf_mhz, centre, n_points=256)
    return fid
