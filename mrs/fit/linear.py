"""Linear algebra of the fit: the baseline's functions, real inner products of complex columns, and
the non-negative amplitude solve on a Gram matrix."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import BSpline
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.optimize import nnls

from mrs.fit.settings import FitError, FitSettings


def baseline_matrix(ppm: np.ndarray, settings: FitSettings) -> np.ndarray:
    """Real baseline functions over the window (n_points, n_functions)."""
    lo, hi = float(ppm.min()), float(ppm.max())
    x = (ppm - lo) / max(hi - lo, 1e-12)
    if settings.baseline == "none":
        return np.zeros((ppm.size, 0))
    if settings.baseline == "poly":
        return np.polynomial.legendre.legvander(2 * x - 1, settings.baseline_order)
    if settings.baseline == "spline":
        k = settings.baseline_order
        n_int = max(1, int(round((hi - lo) / settings.baseline_knot_spacing_ppm)))
        inner = np.linspace(0.0, 1.0, n_int + 1)
        knots = np.concatenate([np.zeros(k), inner, np.ones(k)])
        xx = np.clip(x, 0.0, 1.0 - 1e-12)
        return BSpline.design_matrix(xx, knots, k).toarray()
    raise FitError(f"unknown baseline {settings.baseline!r}; use spline, poly or none")


def re_inner(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Re(a^H b) as two real products: half the work of the complex product."""
    return a.real.T @ b.real + a.imag.T @ b.imag


def nnls_gram(gram: np.ndarray, rhs: np.ndarray, passive: np.ndarray | None = None) -> np.ndarray:
    """min_c>=0 c'Gc - 2c'h, via NNLS on the Cholesky factor (tiny, fast). `passive`: a guess of
    the positive set (the previous solve's): if the solution on it meets the optimality conditions
    (positive there, no descent direction elsewhere) it is the unique solution and NNLS is skipped."""
    n = gram.shape[0]
    ridge = 1e-12 * max(float(np.trace(gram)) / max(n, 1), 1e-300)
    if passive is not None and passive.shape == (n,) and passive.any():
        idx = np.nonzero(passive)[0]
        try:
            sub = cho_factor(gram[np.ix_(idx, idx)] + ridge * np.eye(idx.size), lower=True, check_finite=False)
            c_p = cho_solve(sub, rhs[idx], check_finite=False)
            if np.all(c_p > 0):
                c = np.zeros(n)
                c[idx] = c_p
                slack = rhs - gram @ c  # minus the gradient: must be <= 0 where c = 0
                tol = 1e-9 * max(float(np.abs(rhs).max()), 1e-300)
                if np.all(slack[~passive] <= tol):
                    return c
        except np.linalg.LinAlgError:
            pass
    return nnls_gram_many(gram, rhs[:, None])[:, 0]


def nnls_gram_many(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """nnls_gram for each column of `rhs` (n, k) with one Cholesky factor: (n, k)."""
    n = gram.shape[0]
    ridge = 1e-12 * max(float(np.trace(gram)) / max(n, 1), 1e-300)
    try:
        low = np.linalg.cholesky(gram + ridge * np.eye(n))
    except np.linalg.LinAlgError:
        low = np.linalg.cholesky(gram + 1e-8 * float(np.trace(gram)) / n * np.eye(n))
    ys = solve_triangular(low, rhs, lower=True, check_finite=False)
    upper = np.ascontiguousarray(low.T)
    return np.column_stack([nnls(upper, y, maxiter=10 * n)[0] for y in ys.T])
