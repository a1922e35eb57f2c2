"""Eddy-current correction (Klose 1990): the time-dependent phase of the water reference, taken from
the water reference that fixed the coil weights (when one came first), removed from every transient."""

from __future__ import annotations

import numpy as np

from mrs.orientation import WATER_SEARCH_PPM
from mrs.pipeline.record import CacheRecord
from mrs.pipeline.stage import TransientStage
from mrs.preproc import eddy as _eddy
from mrs.preproc.water import tall_lines_near_receiver


class EddyCorrection(TransientStage):
    name = "eddy"

    def scan(self, kind: str, data: np.ndarray, ctx) -> np.ndarray | None:
        if kind == "water_ref" and ctx.new_state and ctx.eddy is None:  # this water fixed the weights
            ctx.eddy = _eddy.eddy_phase(data)
        return data

    def prime(self, stack: np.ndarray, ctx) -> np.ndarray:
        return np.array([self._correct(fid, ctx) for fid in stack])

    def process(self, data: np.ndarray, ctx) -> tuple[np.ndarray, dict]:
        return self._correct(data, ctx), {}

    def state(self, ctx) -> dict[str, np.ndarray]:
        return {} if ctx.eddy is None else {"eddy": ctx.eddy.copy()}

    def apply(self, rec: CacheRecord, ctx) -> None:
        if rec.kind == "state":
            eddy = rec.arrays.get("eddy")
            ctx.eddy = None if eddy is None else np.asarray(eddy, float)

    @staticmethod
    def _correct(fid: np.ndarray, ctx) -> np.ndarray:
        if ctx.eddy is None:
            return fid
        # Tall residual water is left out of the correction: the reference's phase carries the
        # reference's noise and its metabolites' beat, and multiplied onto a water line that is a
        # sizeable fraction of the reference's own it spread both over the spectrum (Glu/tCr -28 %
        # at 2000x the tallest metabolite line). The water is removed later in any case.
        g = ctx.grid
        water = tall_lines_near_receiver(fid, g.dwell_s, WATER_SEARCH_PPM * g.cf_mhz)
        if water is None:
            return _eddy.apply_eddy(fid, ctx.eddy)
        return _eddy.apply_eddy(fid - water, ctx.eddy) + water
