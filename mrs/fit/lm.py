"""Box-constrained Levenberg-Marquardt on the variable-projection residual of mrs.fit.LCFitter."""

from __future__ import annotations

import numpy as np

from mrs.fit.linear import re_inner


def levenberg_marquardt(fitter, x: np.ndarray, yw: np.ndarray, prior_w: np.ndarray,
                         state: tuple, prior: np.ndarray | None = None, free: np.ndarray | None = None
                         ) -> tuple[np.ndarray, int, str, int, tuple]:
    """Box-constrained LM on the variable-projection residual plus prior rows w * (x - mu)."""
    s = fitter.settings
    free = fitter.free if free is None else free
    w2 = (prior_w ** 2)[free]

    def total_cost(r: np.ndarray, xx: np.ndarray) -> float:
        return float(np.vdot(r, r).real) + float(np.sum((prior_w * (xx - fitter.prior_mu)) ** 2))

    r, jac = state[0], fitter._jacobian(x, state, free)
    nfev = 0
    cost = total_cost(r, x)
    dof = max(2 * yw.size - len(fitter.names) - 2 * fitter.q.shape[1] - int(free.sum()), 1)
    lam = 1e-3
    for _ in range(s.max_iter):
        jf = jac[:, free]
        h = re_inner(jf, jf) + np.diag(w2)
        g = re_inner(jf, r) + w2 * (x - fitter.prior_mu)[free]
        dh = np.maximum(np.diag(h), 1e-12 * max(float(np.diag(h).max()), 1e-300))
        improved = False
        while lam < 1e10:
            try:
                step = -np.linalg.solve(h + lam * np.diag(dh), g)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            x_new = x.copy()
            x_new[free] = x[free] + step
            x_new = np.clip(x_new, fitter.lo, fitter.hi)
            state_new = fitter._state(x_new, yw, prior)  # Jacobian only once the step is accepted
            r_new = state_new[0]
            nfev += 1
            cost_new = total_cost(r_new, x_new)
            if np.isfinite(cost_new) and cost_new < cost:
                improved = True
                break
            lam *= 4.0
        if not improved:
            return x, 1, "converged: no step lowers the cost", nfev, state
        # noise variance per real component, from the current residual
        gain_chi2 = (cost - cost_new) / max(cost_new / dof, 1e-300)
        scaled_step = np.abs(x_new - x)[free] * np.sqrt(dh) / max(np.sqrt(cost), 1e-300)
        x, cost, state = x_new, cost_new, state_new
        lam = max(lam / 3.0, 1e-9)
        if gain_chi2 < s.ftol_chi2:
            return x, 1, "converged: cost change below ftol_chi2 x noise variance", nfev, state
        if float(scaled_step.max()) < s.xtol:
            return x, 2, "converged: step below xtol", nfev, state
        r, jac = r_new, fitter._jacobian(x, state_new, free)
    return x, 0, f"stopped after {s.max_iter} iterations", nfev, state
