"""The result of one linear-combination fit: frozen, complete, says how it ended (like scipy)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from mrs import names as _names
from mrs.fit import crlb as _crlb

# A quantity whose CRLB exceeds its value (or whose amplitude sits at the non-negativity bound)
# cannot be determined from the data: it is reported as undetermined, not as a number.
UNDETERMINED_CRLB_PCT = 100.0


def undetermined(quantities: dict[str, tuple[float, float]], limit_pct: float = UNDETERMINED_CRLB_PCT) -> list[str]:
    """Names among `quantities` (name -> (value, SD)) that the fit cannot determine."""
    out = []
    for name, (value, sd) in quantities.items():
        if not (value > 0 and np.isfinite(sd) and 100.0 * sd / value <= limit_pct):
            out.append(name)
    return sorted(out)


@dataclass(frozen=True, eq=False)
class FitResult:
    """One fit.

    `conc`, `sd` and `crlb_pct` are in the basis's own units (amplitude of the data per unit basis
    FID) and keyed by the basis's names. `cov` is the covariance of the concentrations (basis order),
    from the full Fisher information (nonlinear and baseline parameters included). Spectra (window
    only, complex) are phase-corrected: the data times exp(-i phase), so that their real parts are
    absorption spectra.
    """

    names: tuple[str, ...]
    conc: dict[str, float]
    sd: dict[str, float]
    crlb_pct: dict[str, float]
    cov: np.ndarray
    params: dict[str, float]              # nonlinear parameters by name (phases in rad, rest in Hz)
    x: np.ndarray                         # nonlinear parameter vector, for warm starts
    success: bool
    status: int                           # 1 converged (cost), 2 converged (step), 0 max iterations, -1 failed
    message: str
    nfev: int
    cost: float                           # sum of squared residual moduli
    noise_var: float                      # per real component, from the residual
    ppm: np.ndarray
    data: np.ndarray
    prediction: np.ndarray
    baseline: np.ndarray
    components: dict[str, np.ndarray] = field(default_factory=dict)
    phase0_rad: float = 0.0
    phase1_rad_per_hz: float = 0.0
    # covariance without the metabolite ratio priors (mrs.fit.priors): decides what is determined
    cov_data: np.ndarray | None = None
    # the knot spacings of the baseline splines whose fits this result averages (mrs.fit.baseline_average);
    # empty: one fit
    baseline_knots_ppm: tuple[float, ...] = ()

    def rescaled(self, factor: float) -> FitResult:
        """The result for the data times `factor` (amplitudes, spectra and variances scale; the
        nonlinear parameters, CRLB % and everything else do not)."""
        f = float(factor)
        f2 = float(np.square(np.float64(f)))  # (inf beyond 1e154, not an OverflowError)
        return replace(
            self, conc={k: v * f for k, v in self.conc.items()}, sd={k: v * f for k, v in self.sd.items()},
            cov=self.cov * f2, cov_data=None if self.cov_data is None else self.cov_data * f2,
            cost=self.cost * f2, noise_var=self.noise_var * f2, data=self.data * f,
            prediction=self.prediction * f, baseline=self.baseline * f,
            components={k: v * f for k, v in self.components.items()})

    @property
    def residual(self) -> np.ndarray:
        return self.data - self.prediction

    @property
    def conc_vector(self) -> np.ndarray:
        return np.array([self.conc[n] for n in self.names])

    def quantities(self, cov: np.ndarray | None = None) -> dict[str, tuple[float, float]]:
        """Value and SD of every basis name, canonical alias and combined metabolite (SDs from
        `cov`, default the result's covariance)."""
        c = self.conc_vector
        cov = self.cov if cov is None else cov
        out = {}
        for q, members in _names.combination_weights(self.names).items():
            w = np.array([members.get(n, 0.0) for n in self.names])
            out[q] = _crlb.combine(c, cov, w)
        return out

    def undetermined(self, limit_pct: float = UNDETERMINED_CRLB_PCT) -> list[str]:
        """Basis names and combined metabolites the fit cannot determine (CRLB above `limit_pct`
        of the value, or a zero amplitude), judged without the metabolite ratio priors: a value
        that only a prior supplies is not a measurement."""
        return undetermined(self.quantities(self.cov_data), limit_pct)

    def ratios(self) -> dict[str, tuple[float, float]]:
        """Ratios to tCr and tNAA ("Glu/tCr", "Glx/tNAA", ...) with delta-method SDs."""
        c = self.conc_vector
        weights = _names.combination_weights(self.names)
        out = {}
        for num, den in _names.ratio_pairs(set(weights)):
            wn = np.array([weights[num].get(n, 0.0) for n in self.names])
            wd = np.array([weights[den].get(n, 0.0) for n in self.names])
            out[f"{num}/{den}"] = _crlb.ratio(c, self.cov, wn, wd)
        return out
