"""Cramér-Rao lower bounds from the Fisher information of the full model at the solution.

The model is complex; with independent real and imaginary noise of variance sigma2 each, the Fisher
information of real parameters is Re(J^H J) / sigma2 where J holds d model / d parameter.
Combined metabolites and ratios take their uncertainty from the full covariance (delta method),
so anticorrelated parts such as Glu and Gln give a Glx SD below the root sum of variances.
"""

from __future__ import annotations

import numpy as np


def covariance(jac: np.ndarray, sigma2: float, prior_precision: np.ndarray | None = None,
               sandwich: bool = False) -> np.ndarray:
    """Inverse Fisher information for complex Jacobian `jac` (n_points, n_params), plus the
    precision of Gaussian priors: a vector (1 / SD^2 per parameter, zero where there is none) or a
    full matrix (priors on combinations of parameters).

    `sandwich`: (F + P)^-1 F (F + P)^-1 instead of (F + P)^-1, the covariance of the penalised
    (MAP) estimate under the noise alone: what its scatter over noise draws is. The plain inverse
    is the posterior covariance, which also holds the prior's own spread (the uncertainty about
    what the priors constrain, e.g. the MM shape), a systematic part that does not scatter.
    """
    fisher = (jac.conj().T @ jac).real / sigma2
    post = fisher
    if prior_precision is not None:
        pp = np.asarray(prior_precision, float)
        post = fisher + (np.diag(pp) if pp.ndim == 1 else pp)
    # Normalise before inverting: parameters span many orders of magnitude.
    d = np.sqrt(np.clip(np.diag(post), 1e-300, None))
    scaled = post / np.outer(d, d)
    try:
        inv = np.linalg.inv(scaled)
        if not np.all(np.isfinite(inv)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        inv = np.linalg.pinv(scaled, rcond=1e-12)
    if sandwich and post is not fisher:
        inv = inv @ (fisher / np.outer(d, d)) @ inv
    return inv / np.outer(d, d)


def noise_variance(residual: np.ndarray, n_params: int) -> float:
    """Per-component (real or imaginary) noise variance from a complex residual."""
    dof = max(2 * residual.size - n_params, 1)
    return float(np.vdot(residual, residual).real / dof)


def combine(conc: np.ndarray, cov: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Value and SD of weights @ conc with the full covariance (J cov J^T)."""
    value = float(weights @ conc)
    var = float(weights @ cov @ weights)
    return value, float(np.sqrt(max(var, 0.0)))


def ratio(conc: np.ndarray, cov: np.ndarray, w_num: np.ndarray, w_den: np.ndarray) -> tuple[float, float]:
    """a/b with a = w_num @ conc, b = w_den @ conc; SD by the delta method with covariance."""
    a = float(w_num @ conc)
    b = float(w_den @ conc)
    if not b > 0:
        return float("nan"), float("nan")
    r = a / b
    grad = w_num / b - w_den * a / (b * b)
    var = float(grad @ cov @ grad)
    return r, float(np.sqrt(max(var, 0.0)))
