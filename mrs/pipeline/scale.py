"""Concentrations from the fitted amplitudes: mM from the water reference when there is one (55.5 M
water, an assumed grey-matter water content), else institutional units with tCr at 8."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrs.names import is_macromolecule
from mrs.pipeline.stage import BlockStage
from mrs.results import _num

WATER_CONC_MM = 55.5e3 * 0.78   # pure water 55.5 M times an assumed grey-matter water content
TCR_REFERENCE_MM = 8.0          # institutional units: the fitted tCr is scaled to 8 mM


@dataclass(frozen=True)
class Scaled:
    fit: object                   # the FitResult
    conc: dict[str, float]        # unrounded, for the plausibility checks
    crlb_pct: dict[str, float]


def water_amplitude(water_fid: np.ndarray) -> float:
    """Water signal at t = 0, extrapolated from the first points' log magnitude (skips point 0)."""
    mag = np.abs(np.asarray(water_fid)[1:17])
    if not np.all(mag > 0):
        return float(np.abs(water_fid[0]))
    t = np.arange(1, 17, dtype=float)
    coef = np.polyfit(t, np.log(mag), 1)
    return float(np.exp(coef[1]))


class Scale(BlockStage):
    name = "scale"

    def process(self, res, ctx) -> tuple[Scaled, dict]:
        quantities = res.quantities()
        # a metabolite the data cannot determine gets a warning (qc.undetermined), not a ratio
        lost = [n for n in res.undetermined() if not is_macromolecule(n)]
        ratios = {k: ((float("nan"), e) if k.split("/")[0] in lost else (r, e)) for k, (r, e) in res.ratios().items()}
        water = ctx.water_fid()
        water_scaled, factor = False, 1.0
        if water is not None:
            amp = water_amplitude(water)
            if amp > 0:
                factor, water_scaled = 2.0 * WATER_CONC_MM / amp, True
        if not water_scaled:
            tcr = quantities.get("tCr", (float("nan"), 0.0))[0]
            factor = TCR_REFERENCE_MM / tcr if tcr > 0 else 1.0
        conc = {k: v * factor for k, (v, _) in quantities.items()}
        sd = {k: e * factor for k, (_, e) in quantities.items()}
        pct = {k: (100.0 * sd[k] / conc[k] if conc[k] > 0 else float("inf")) for k in conc}
        return Scaled(res, conc, pct), {
            "conc": {k: _num(v) for k, v in conc.items()}, "sd": {k: _num(v) for k, v in sd.items()},
            "crlb_pct": {k: _num(v, 3) for k, v in pct.items()},
            "ratios": {k: _num(r) for k, (r, _) in ratios.items()},
            "ratios_sd": {k: _num(e) for k, (_, e) in ratios.items()}, "water_scaled": water_scaled,
            "undetermined": tuple(lost)}
