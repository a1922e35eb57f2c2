"""The fitted result of mrs.fit.LCFitter: prediction, baseline, the covariance of every parameter
(Fisher information with the priors, mrs.fit.crlb) and the concentrations with their CRLBs."""

from __future__ import annotations

import time

import numpy as np

from mrs.fit import crlb as _crlb
from mrs.fit.result import FitResult


def finish(fitter, x: np.ndarray, state: tuple, status: int, message: str, nfev: int,
           t0: float, prior_w: np.ndarray, noise_var: float, free: np.ndarray | None = None) -> FitResult:
    """The FitResult at the fitted x (state: the evaluation there, mrs.fit.evaluation._state)."""
    r, c, a, z, fl = state[:5]
    beta = fitter.q.T @ (z - a @ c) if fitter.q.shape[1] else np.zeros(0, complex)
    base = fitter.q @ beta if fitter.q.shape[1] else np.zeros_like(z)
    m_met = len(fitter.names)
    broad = a[:, m_met:] @ c[m_met:]
    pred = a @ c + base
    base = base + broad  # reported baseline: smooth baseline plus broad background
    resid = z - pred
    jac, nl_keep, lin_keep = _full_jacobian(fitter, x, state, pred, free)
    # The CRLB's noise: the smaller of two estimates that can each only be too large: the
    # residual's (it also holds the model's misfit: MM and baseline the model lacks, which made
    # the CRLBs 20-30 % larger than the scatter over noise draws on broad-line spectra,
    # bench_fit_external) and the outer bins' (`noise_var`: tails of large lines). The
    # residual's variance stays the result's `noise_var` (a fit-quality number).
    sigma_fit = _crlb.noise_variance(resid, jac.shape[1])
    sigma2 = min(sigma_fit, noise_var) if np.isfinite(noise_var) and noise_var > 0 else sigma_fit
    cov_c, cov_d = _amplitude_covariances(fitter, jac, sigma2, noise_var, prior_w, nl_keep, lin_keep, state[7])
    m = len(fitter.names)
    conc_raw = c[:m] / fitter.scale
    conc, sd, pct, cov_full, cov_data = _in_basis_order(fitter, conc_raw, cov_c, cov_d)
    finite = np.all(np.isfinite(x)) and np.all(np.isfinite(conc_raw)) and np.isfinite(sigma2)
    params = {p: float(v) for p, v in zip(fitter.param_names, x, strict=True)}
    comps = {n: a[:, i] * c[i] for i, n in enumerate(fitter.names)}
    if not finite:
        status, message = -1, "fit produced non-finite values"
    return FitResult(
        names=fitter.all_names, conc=conc, sd=sd, crlb_pct=pct, cov=cov_full, params=params, x=x.copy(),
        success=bool(status >= 0 and finite), status=status,
        message=f"{message} ({(time.perf_counter() - t0) * 1e3:.1f} ms)", nfev=nfev,
        cost=float(np.vdot(resid, resid).real), noise_var=sigma_fit, ppm=fitter.ppm.copy(), data=z,
        prediction=pred, baseline=base, components=comps,
        phase0_rad=float(x[0]), phase1_rad_per_hz=float(x[1]), cov_data=cov_data)


def _full_jacobian(fitter, x: np.ndarray, state: tuple, pred: np.ndarray,
                   free: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """d model / d parameter in the de-phased frame (free nonlinear parameters not at a bound, the
    amplitudes, the baseline's real and imaginary coefficients), and the masks of the nonlinear and
    linear columns kept."""
    c, a, fl = state[1], state[2], state[4]
    cols = [(1j * pred)[:, None], (1j * fitter.dnu * pred)[:, None], fitter._group_derivatives(x, c, fl)]
    jac_nl = np.hstack(cols)
    if fitter.each_idx.size:
        jac_nl = np.column_stack([jac_nl, fitter._each_jac(fl, c)])
    if fitter.kernel is not None:
        jac_nl = np.column_stack([jac_nl, fitter._kernel_jac(state[8], c)])
    at_bound = (np.isclose(x, fitter.lo) | np.isclose(x, fitter.hi)) & np.isfinite(fitter.lo)
    nl_keep = (fitter.free if free is None else free) & ~at_bound
    jac_nl = jac_nl[:, nl_keep]
    # Background lines held at zero by the non-negativity are not free parameters here.
    m_met = len(fitter.names)
    lin_keep = np.ones(a.shape[1], bool)
    lin_keep[m_met:] = c[m_met:] > 0
    jac = np.column_stack([jac_nl, a[:, lin_keep], fitter.q.astype(complex), 1j * fitter.q])
    return jac, nl_keep, lin_keep


def _amplitude_covariances(fitter, jac: np.ndarray, sigma2: float, noise_var: float, prior_w: np.ndarray,
                           nl_keep: np.ndarray, lin_keep: np.ndarray,
                           prior: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Covariance of the concentrations with every prior, and without the ratio priors (what the
    data and the lineshape/MM priors alone determine)."""
    n_par = jac.shape[1]
    n_nl = int(nl_keep.sum())
    # Priors on the nonlinear parameters add to the Fisher information.
    prior_prec = np.zeros((n_par, n_par))
    prior_prec[np.arange(n_nl), np.arange(n_nl)] = (prior_w[nl_keep] ** 2) / max(noise_var, 1e-300)
    prior_prec_data = prior_prec
    if prior is not None:
        # the MM area and ratio priors: precision D^T W^2 D on the amplitudes (same units as the rows)
        p = prior[:, lin_keep]
        k = p.shape[1]
        n_mm = fitter.prior_d.shape[0]  # MM rows first, then the ratio priors' rows
        prior_prec_data = prior_prec.copy()
        prior_prec_data[n_nl:n_nl + k, n_nl:n_nl + k] += (p[:n_mm].T @ p[:n_mm]) / max(noise_var, 1e-300)
        prior_prec[n_nl:n_nl + k, n_nl:n_nl + k] += (p.T @ p) / max(noise_var, 1e-300)
    sandwich = fitter.settings.crlb_sandwich
    m = len(fitter.names)
    unit = np.outer(fitter.scale, fitter.scale)
    cov_c = _crlb.covariance(jac, sigma2, prior_prec, sandwich=sandwich)[n_nl:n_nl + m, n_nl:n_nl + m] / unit
    cov_d = cov_c
    if prior is not None and prior.shape[0] > fitter.prior_d.shape[0]:
        cov_d = _crlb.covariance(jac, sigma2, prior_prec_data, sandwich=sandwich)
        cov_d = cov_d[n_nl:n_nl + m, n_nl:n_nl + m] / unit
    return cov_c, cov_d


def _in_basis_order(fitter, conc_raw: np.ndarray, cov_c: np.ndarray, cov_d: np.ndarray) -> tuple:
    """conc, sd, CRLB % dicts and the two covariances over every basis entry, in basis order (the
    entries without signal in the window re-embedded: 0, SD NaN)."""
    full_names = fitter.all_names
    pos = {n: i for i, n in enumerate(fitter.names)}
    mfull = len(full_names)
    sel = np.array([full_names.index(n) for n in fitter.names])
    cov_full = np.zeros((mfull, mfull))
    cov_full[np.ix_(sel, sel)] = cov_c
    cov_data = np.zeros((mfull, mfull))
    cov_data[np.ix_(sel, sel)] = cov_d
    sd_raw = np.sqrt(np.clip(np.diag(cov_c), 0, None))
    conc, sd, pct = {}, {}, {}
    for n in full_names:
        v, e = (float(conc_raw[pos[n]]), float(sd_raw[pos[n]])) if n in pos else (0.0, float("nan"))
        conc[n], sd[n] = v, e
        pct[n] = 100.0 * e / v if v > 0 else float("inf")
    return conc, sd, pct, cov_full, cov_data
