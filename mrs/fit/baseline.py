"""The fit's baseline: a fine cubic spline whose stiffness the data choose.

A baseline Q beta over the window (Q orthonormal, real; beta complex) costs lambda * sum_i k_i |beta_i|^2
on top of the residual: the squared second differences of its spline coefficients, rotated so the
penalty is diagonal (k_i, the roughness of function i; 0 for straight lines). For fixed amplitudes
the best baseline is then the data's projection shrunk by h_i = 1 / (1 + lambda k_i), and the cost
left is |W^(1/2) (z - A c)|^2 with W^(1/2) = I - Q diag(g) Q^T, g_i = 1 - sqrt(1 - h_i): the variable
projection keeps its form, with g = 1 the unpenalised projection. Sum h_i is the baseline's effective
number of (complex) parameters.

Why: knots every 1 ppm without a penalty could not follow a broad bump (FWHM 0.4 ppm) under Glu
and gave it to Glu (+45 % on a noise-free spectrum), knots every 0.5 ppm followed it but doubled
the scatter at low SNR. LCModel regularises a fine spline and picks the stiffness from the data;
here lambda minimises RSS + p sigma^2 * (2 sum h_i) over a grid of effective degrees of freedom
(sigma^2: the noise variance of the spectrum's outer band): a flexible baseline must lower the
residual by more than the noise it would fit. p = 2 is Mallows' C_p (AIC), the best prediction of
the spectrum; the concentrations gain less from a flexible baseline than the prediction does (its
freedom is shared with the broad parts of the metabolite lines), so p = 4 (FitSettings.
baseline_dof_cost), chosen on the truth set's two development sets between 2, 4 and 8 (Glu/tCr
MAPE 11.4/12.3, 9.5/12.3 and 8.7/13.2 % on spant-dev/sim-broad-dev).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import BSpline


@dataclass(frozen=True, eq=False)
class PenalisedBaseline:
    q: np.ndarray              # (n_points, n) orthonormal real functions over the window
    roughness: np.ndarray      # (n,) k_i >= 0 (all 0: unpenalised)

    @property
    def n(self) -> int:
        return self.q.shape[1]

    def hat(self, lam: float) -> np.ndarray:
        """h_i: the share of the data's projection on Q_i the baseline keeps."""
        stiff = np.where(self.roughness > 0, lam * np.where(self.roughness > 0, self.roughness, 1.0), 0.0)
        return 1.0 / (1.0 + stiff)  # lam = inf: the free functions alone

    def shrink(self, lam: float) -> np.ndarray:
        """g_i of W^(1/2) = I - Q diag(g) Q^T."""
        return 1.0 - np.sqrt(np.clip(1.0 - self.hat(lam), 0.0, 1.0))

    def dof(self, lam: float) -> float:
        """Effective number of complex baseline parameters."""
        return float(self.hat(lam).sum())

    def lambda_for_dof(self, target: float) -> float:
        """The stiffness with `target` effective degrees of freedom (0: as many as functions;
        bisection on log lambda, clipped to what the penalty can reach)."""
        if not self.roughness.any() or target >= self.n:
            return 0.0
        lo, hi = -12.0, 12.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if self.dof(10.0 ** mid) > target:
                lo = mid
            else:
                hi = mid
        return float(10.0 ** (0.5 * (lo + hi)))


def penalised_baseline(fine: np.ndarray, coarse: np.ndarray | None = None) -> PenalisedBaseline:
    """The rotated orthonormal basis of the real functions `fine` (n_points, n) and, with `coarse`
    (spline functions whose span lies in the fine one's), each rotated function's roughness: the
    squared second differences of its fine spline coefficients once its coarse part is taken out.
    The coarse functions are thus free (roughness 0) and the penalty only holds back the detail
    beyond them; without `coarse` there is no penalty."""
    n = fine.shape[1]
    if n == 0:
        return PenalisedBaseline(np.zeros((fine.shape[0], 0)), np.zeros(0))
    q0, r = np.linalg.qr(fine)
    if coarse is None or coarse.shape[1] >= n or n < 3:
        return PenalisedBaseline(q0, np.zeros(n))
    d = np.diff(np.eye(n), 2, axis=0)
    r_inv = np.linalg.inv(r)
    k = r_inv.T @ (d.T @ d) @ r_inv
    u = np.linalg.qr(q0.T @ coarse)[0]  # the coarse span in the fine orthonormal coordinates
    out = np.eye(n) - u @ u.T
    k = out @ k @ out
    rough, v = np.linalg.eigh(0.5 * (k + k.T))
    rough = np.clip(rough, 0.0, None)
    rough[:coarse.shape[1]] = 0.0  # the coarse span (the penalty's null space) is free
    return PenalisedBaseline(q0 @ v, rough)


def spline_basis(ppm: np.ndarray, knot_spacing_ppm: float, degree: int, refine: int = 1) -> np.ndarray:
    """Cubic (degree) B-splines over the window with knots every `knot_spacing_ppm`, each interval
    split into `refine` (so the refined span holds the unrefined one)."""
    lo, hi = float(ppm.min()), float(ppm.max())
    x = (ppm - lo) / max(hi - lo, 1e-12)
    n_int = max(1, int(round((hi - lo) / knot_spacing_ppm))) * max(1, int(refine))
    inner = np.linspace(0.0, 1.0, n_int + 1)
    knots = np.concatenate([np.zeros(degree), inner, np.ones(degree)])
    return BSpline.design_matrix(np.clip(x, 0.0, 1.0 - 1e-12), knots, degree).toarray()


def penalised_cost(rss: float, dof_complex: float, noise_var: float, per_dof: float) -> float:
    """Residual plus `per_dof` noise variances per real parameter (2: Mallows' C_p / AIC)."""
    return float(rss + per_dof * noise_var * 2.0 * dof_complex)
