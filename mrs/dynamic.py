"""Dynamic fit: all blocks of a session at once, nonlinear parameters smooth in time, concentrations per block.

    res = dynamic_fit(fitter, fids, x_blocks, t_s, smooth_s=300.0)
    res.conc[b], res.cov[b]     # per-block concentrations (fitter's basis order) and covariance

Block-by-block fitting estimates lineshape, shift and phases again for every block, and their noise
leaks into the concentrations (a broader fitted line takes more Glu area). Those parameters change
slowly (drift is corrected per transient; BOLD narrowing is ~0.2 Hz over minutes), so here they are
taken from a smooth trajectory: a Gaussian-kernel average over time of the block fits' nonlinear
parameters (`smooth_s`, the kernel SD in seconds; `smooth_s = inf` shares one set for the session).
With the nonlinear parameters fixed, each block's concentrations (non-negative) and baseline are a
linear least-squares problem, solved exactly.

Uncertainty (CRLB) from the joint Fisher information of the smooth model: the block's own Fisher
information for (concentrations, baseline, nonlinear parameters), where the nonlinear block is
informed by all blocks inside the kernel. With S_b the Schur complement of block b's nonlinear
parameters and n_eff = 1 / sum(w^2) the kernel's effective number of blocks, the nonlinear
information is n_eff * S_b (blocks inside the kernel are alike), which gives
cov(c_b) = F_cc^-1 + G S^-1 G^T with G = F_cc^-1 F_c,theta. n_eff = 1 recovers the block-by-block CRLB.

Uses the fitter's public attributes (names, fids, scale, groups, slices, model, win, dnu, q, t, bg,
lsets, each_slice): the same basis, window, baseline and lineshape model as the block fits.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy.optimize import nnls

from mrs.fit import crlb as _crlb


@dataclass(frozen=True)
class DynamicResult:
    names: tuple[str, ...]        # fitter.all_names (basis order)
    conc: np.ndarray              # (B, M) basis units, zeros for names outside the window
    cov: np.ndarray               # (B, M, M)
    x: np.ndarray                 # (B, P) nonlinear parameters used for each block
    n_eff: np.ndarray             # (B,) effective number of blocks informing the nonlinear parameters
    residual_rel: np.ndarray      # (B,) residual power over the block-by-block fit's noise estimate


def smooth_parameters(x_blocks: np.ndarray, t_s: np.ndarray, ok: np.ndarray, smooth_s: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-kernel average of the good blocks' parameters at every block time, and n_eff."""
    x_blocks = np.asarray(x_blocks, float)
    t = np.asarray(t_s, float)
    good = np.asarray(ok, bool) & np.all(np.isfinite(x_blocks), axis=1)
    if not good.any():
        raise ValueError("no block fit succeeded: nothing to build a dynamic model from")
    if not np.isfinite(smooth_s):
        w = np.tile(good.astype(float), (len(t), 1))
    else:
        d = (t[:, None] - t[None, :]) / max(float(smooth_s), 1e-9)
        w = np.exp(-0.5 * d * d) * good[None, :]
    w = w / w.sum(1, keepdims=True)
    xs = w @ np.where(good[:, None], x_blocks, 0.0)
    n_eff = 1.0 / np.sum(w * w, axis=1)
    return xs, n_eff


def shared_mask(param_names: tuple[str, ...]) -> np.ndarray:
    """Parameters smoothed across blocks: the lineshape widths. Phases and shifts stay per block
    (phase and frequency do change between blocks, and the singlets pin them down in every block)."""
    return np.array([("lorentz" in n or "gauss" in n) for n in param_names])


class _Model:
    """Basis spectra at fixed nonlinear parameters, and their derivatives, on the fitter's window."""

    def __init__(self, fitter) -> None:
        self.f = fitter
        self.n_met = len(fitter.names)

    def fids(self, x: np.ndarray) -> np.ndarray:
        f = self.f
        fl = np.empty_like(f.fids)
        for (_, idx, _), sl in zip(f.groups, f.slices, strict=True):
            fl[idx] = f.fids[idx] * f.model.lineshape(f.t, x[sl])
        for k, ls in enumerate(getattr(f, "lsets", ())):
            members, kind = ls[1], ls[4]
            d = x[f.each_slice][k]
            rate = -np.pi * d if kind == "l" else 2j * np.pi * d
            fl[members] *= np.exp(rate * f.t)
        return fl

    def columns(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Nw, M + n_bg) basis spectra in the de-phased frame, and the time-domain FIDs (M, N)."""
        fl = self.fids(x)
        a = sfft.fft(fl, axis=1)[:, self.f.win].T
        bg = getattr(self.f, "bg", np.zeros((a.shape[0], 0)))
        if bg.shape[1]:
            a = np.hstack([a, bg])
        return a, fl

    def nonlinear_jacobian(self, x: np.ndarray, c: np.ndarray, fl: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """d model / d theta (Nw, P_free) at x for concentrations c (de-phased frame)."""
        f = self.f
        cols = [1j * pred, 1j * f.dnu * pred]
        for (_, idx, _), sl in zip(f.groups, f.slices, strict=True):
            s_g = c[idx] @ fl[idx]
            d = sfft.fft(s_g[None, :] * f.model.log_derivatives(f.t, x[sl]), axis=1)
            cols.extend(d[:, f.win])
        for ls in getattr(f, "lsets", ()):
            members, kind = ls[1], ls[4]
            fac = -np.pi * f.t if kind == "l" else 2j * np.pi * f.t
            cols.append(sfft.fft((c[members] @ fl[members]) * fac)[f.win])
        jac = np.column_stack(cols)
        return jac[:, f.free]


def _refine_local(fitter, fid: np.ndarray, x: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """Re-optimise the per-block parameters (phases, shifts) with the shared ones held at `x`: the
    block fit chose its phase and shift together with its own (noisy) widths."""
    f = copy.copy(fitter)
    f.lo = fitter.lo.copy()
    f.hi = fitter.hi.copy()
    held = np.clip(x[shared], fitter.lo[shared], fitter.hi[shared])
    f.lo[shared] = held
    f.hi[shared] = held
    f.free = f.hi > f.lo
    res = f.fit(fid, x0=np.clip(x, f.lo, f.hi))
    if not res.success or not np.all(np.isfinite(res.x)):
        return x
    out = np.asarray(res.x, float).copy()
    out[shared] = held
    return out


def _solve_linear(a: np.ndarray, q: np.ndarray, z: np.ndarray, n_met: int) -> np.ndarray:
    """Non-negative amplitudes with the (complex) baseline projected out."""
    at = a - q @ (q.T @ a) if q.shape[1] else a
    zt = z - q @ (q.T @ z) if q.shape[1] else z
    big = np.vstack([at.real, at.imag])
    rhs = np.concatenate([zt.real, zt.imag])
    c, _ = nnls(big, rhs, maxiter=20 * a.shape[1])
    return c


def dynamic_fit(fitter, fids: np.ndarray, x_blocks: np.ndarray, t_s: np.ndarray, ok: np.ndarray | None = None,
                smooth_s: float = 300.0, noise_var: np.ndarray | None = None, refine: bool = True
                ) -> DynamicResult:
    """Fit B block-averaged FIDs (B, N) with nonlinear parameters smoothed over the block fits' `x_blocks`.

    `noise_var` (B,), per real component of the window spectrum: from the block fits when given,
    else from each block's residual.
    """
    fids = np.asarray(fids, complex)
    b_n = fids.shape[0]
    ok = np.ones(b_n, bool) if ok is None else np.asarray(ok, bool)
    x_blocks = np.asarray(x_blocks, float)
    shared = shared_mask(tuple(fitter.param_names))
    xs_smooth, n_eff = smooth_parameters(x_blocks, t_s, ok, smooth_s)
    xs = np.where(shared[None, :], xs_smooth, x_blocks)
    bad = ~np.all(np.isfinite(x_blocks), axis=1)
    xs[bad] = xs_smooth[bad]  # a failed block takes the smooth trajectory for its phases and shifts too
    model = _Model(fitter)
    m = model.n_met
    q = fitter.q.astype(complex) if fitter.q.shape[1] else np.zeros((fitter.win.size, 0), complex)
    all_names = tuple(fitter.all_names)
    sel = np.array([all_names.index(n) for n in fitter.names])
    conc = np.zeros((b_n, len(all_names)))
    cov = np.zeros((b_n, len(all_names), len(all_names)))
    resid_rel = np.zeros(b_n)
    spectra = sfft.fft(fids, axis=1)[:, fitter.win]
    for b in range(b_n):
        x = xs[b]
        if refine:
            x = _refine_local(fitter, fids[b], x, shared)
            xs[b] = x
        z = spectra[b] * np.exp(-1j * (x[0] + x[1] * fitter.dnu))
        a, fl = model.columns(x)
        c = _solve_linear(a, q, z, m)
        metab = a @ c
        beta = q.T @ (z - metab) if q.shape[1] else np.zeros(0, complex)
        pred = metab + (q @ beta if q.shape[1] else 0)
        resid = z - pred
        # Fisher information: linear part (active amplitudes + baseline) and nonlinear part.
        active = np.ones(a.shape[1], bool)
        active[m:] = c[m:] > 0  # background lines held at zero are not free
        j_lin = np.column_stack([a[:, active], q, 1j * q])
        j_nl = model.nonlinear_jacobian(x, c, fl, pred)
        n_par_block = j_lin.shape[1] + j_nl.shape[1] / max(n_eff[b], 1.0)
        sigma2 = float(noise_var[b]) if noise_var is not None else _crlb.noise_variance(resid, int(n_par_block))
        f_ll = (j_lin.conj().T @ j_lin).real / sigma2
        f_ln = (j_lin.conj().T @ j_nl).real / sigma2
        f_nn = (j_nl.conj().T @ j_nl).real / sigma2
        cov_ll = _inv(f_ll)
        g = cov_ll @ f_ln
        schur = f_nn - f_ln.T @ g
        cov_lin = cov_ll + g @ _inv(n_eff[b] * schur) @ g.T
        cov_c = cov_lin[:m, :m]  # metabolite amplitudes come first (all kept, like the block fit)
        scale = fitter.scale
        conc[b, sel] = c[:m] / scale
        cov[b][np.ix_(sel, sel)] = cov_c / np.outer(scale, scale)
        resid_rel[b] = float(np.vdot(resid, resid).real / (2 * resid.size) / sigma2)
    return DynamicResult(all_names, conc, cov, xs, n_eff, resid_rel)


def _inv(mat: np.ndarray) -> np.ndarray:
    d = np.sqrt(np.clip(np.diag(mat), 1e-300, None))
    scaled = mat / np.outer(d, d)
    try:
        inv = np.linalg.inv(scaled)
        if not np.all(np.isfinite(inv)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        inv = np.linalg.pinv(scaled, rcond=1e-12)
    return inv / np.outer(d, d)


def quantities(names: tuple[str, ...], conc: np.ndarray, cov: np.ndarray) -> tuple[dict, dict]:
    """Combined metabolites and ratios ({name: (value, sd)}) of one block, like FitResult's."""
    from mrs import names as _names

    weights = _names.combination_weights(names)
    q = {}
    for k, members in weights.items():
        w = np.array([members.get(n, 0.0) for n in names])
        q[k] = _crlb.combine(conc, cov, w)
    r = {}
    for num, den in _names.ratio_pairs(set(weights)):
        wn = np.array([weights[num].get(n, 0.0) for n in names])
        wd = np.array([weights[den].get(n, 0.0) for n in names])
        r[f"{num}/{den}"] = _crlb.ratio(conc, cov, wn, wd)
    return q, r
