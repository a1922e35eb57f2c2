"""Lineshape models, one module each, registered by name (no if/elif chains in the fitter).

A model describes, per group of basis spectra (metabolites, macromolecules), the nonlinear
parameters applied in the time domain: `fid_m(t) * lineshape(t, p)`. It gives the lineshape, the
logarithmic derivatives d lineshape / dp / lineshape (so the Jacobian costs one FFT per parameter),
bounds and starting values.
"""

from __future__ import annotations

from mrs.fit.models.base import LineshapeModel
from mrs.fit.models.lorentzian import LorentzianModel
from mrs.fit.models.skewvoigt import SkewVoigtModel
from mrs.fit.models.voigt import VoigtModel

MODELS: dict[str, type[LineshapeModel]] = {
    VoigtModel.name: VoigtModel,
    LorentzianModel.name: LorentzianModel,
    SkewVoigtModel.name: SkewVoigtModel,
}


def get_model(name: str) -> LineshapeModel:
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"unknown lineshape model {name!r}; available: {', '.join(MODELS)}") from None


__all__ = ["MODELS", "LineshapeModel", "get_model"]
