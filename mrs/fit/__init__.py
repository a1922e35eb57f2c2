"""Linear-combination fitting: lineshape models, variable projection, CRLB, results."""

from mrs.fit.result import FitResult
from mrs.fit.varpro import FitError, FitSettings, LCFitter

__all__ = ["FitError", "FitResult", "FitSettings", "LCFitter"]
