"""Dynamic fit: all blocks of a session at once, lineshape smooth in time, concentrations per block.

    res = dynamic_fit(fitter, fids, block_fits, t_s, smooth_s=300.0)
    res.conc[b], res.cov[b]     # per-block concentrations (fitter's basis order) and covariance

Block-by-block fitting re-estimates the linewidths for every block, and their noise leaks into the
concentrations (a broader fitted line takes more Glu area). Linewidths change slowly (BOLD narrowing
is ~0.2 Hz over minutes), so here they come from a smooth trajectory: a Gaussian-kernel average over
time of the block fits' width parameters (`smooth_s`, the kernel SD in seconds; `inf` shares one
lineshape for the session). Phases and frequency shifts stay per block: they do change between
blocks, and the singlets pin them down in each block. Every block is then fitted again by the same
`LCFitter` with the widths held at their smooth values (phases and shifts re-optimised,
concentrations and baseline solved by the fitter itself, priors and all), so the model is exactly
the block fitter's.

Uncertainty from the joint Fisher information. For one block, with c the concentrations and w the
widths, the full CRLB (widths free: the block fit's covariance) and the conditional CRLB (widths
known: the refit's covariance) differ by the Schur-complement term G S^-1 G^T carried by the widths.
In the dynamic model the widths are informed by all blocks inside the kernel, n_eff = 1 / sum(w^2)
of them (treated as alike), so that term shrinks by n_eff:

    cov_dynamic = cov_conditional + (cov_block - cov_conditional) / n_eff

n_eff = 1 gives back the block-by-block CRLB. A block whose lines really differ (motion) keeps its
own block fit and is left out of the smoothing: the caller names such blocks (`keep_own`, e.g. from
`abrupt_outliers` of the NAA linewidth), and any block whose cost rises by more than fixing k widths
can by chance (chi2(k) + 4 SD) is added. Only the fitter's public interface is used (`fit`,
`param_names`, `lo`, `hi`, `free`; FitResult `conc`, `cov`, `x`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from mrs.fit import crlb as _crlb


@dataclass(frozen=True)
class DynamicResult:
    names: tuple[str, ...]        # basis order (FitResult.names)
    conc: np.ndarray              # (B, M) basis units
    cov: np.ndarray               # (B, M, M)
    x: np.ndarray                 # (B, P) nonlinear parameters of each block's final fit
    n_eff: np.ndarray             # (B,) effective number of blocks informing the widths
    results: tuple                # the per-block FitResults with widths held (their cov is conditional)
    own_lineshape: np.ndarray     # (B,) blocks that kept their own fit (lines differ from the smooth model)


def shared_mask(param_names: tuple[str, ...]) -> np.ndarray:
    """The parameters smoothed across blocks: every linewidth (Lorentzian, Gaussian, per-set extras)."""
    return np.array([("lorentz" in n or "gauss" in n) for n in param_names])


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


def _held_fitter(fitter, shared: np.ndarray, values: np.ndarray):
    """A shallow copy of the fitter whose shared parameters are fixed (lo = hi) at `values`."""
    f = copy.copy(fitter)
    f.lo = np.array(fitter.lo, float).copy()
    f.hi = np.array(fitter.hi, float).copy()
    held = np.clip(values[shared], fitter.lo[shared], fitter.hi[shared])
    f.lo[shared] = held
    f.hi[shared] = held
    f.free = f.hi > f.lo
    return f


def abrupt_outliers(values: np.ndarray, t_s: np.ndarray, smooth_s: float, floor: float = 0.5,
                    n_sd: float = 3.0) -> np.ndarray:
    """Blocks whose value (e.g. NAA FWHM, Hz) departs from its kernel-smoothed trajectory (the same
    smoothing as the widths) by more than max(floor, n_sd x the block-to-block noise); the noise is
    taken from successive differences (robust to trends and steps). Slow trends pass."""
    v = np.asarray(values, float)
    good = np.isfinite(v)
    if good.sum() < 3:
        return np.zeros(v.size, bool)
    smooth, _ = smooth_parameters(np.where(good, v, 0.0)[:, None], t_s, good, smooth_s)
    dev = np.abs(v - smooth[:, 0])
    noise = 1.4826 * float(np.median(np.abs(np.diff(v[good])))) / np.sqrt(2.0)
    return good & (dev > max(floor, n_sd * noise))


def dynamic_fit(fitter, fids: np.ndarray, block_fits: list, t_s: np.ndarray, ok: np.ndarray | None = None,
                smooth_s: float = 300.0, keep_own: np.ndarray | None = None,
                hold: np.ndarray | None = None) -> DynamicResult:
    """Refit B block-averaged FIDs (B, N) with linewidths smoothed over their block fits (FitResults).
    `hold`: parameters the block fits already shared (a session reference, `LCFitter.session_mask`):
    they stay shared here too (smoothing values that are equal leaves them as they are)."""
    fids = np.asarray(fids, complex)
    b_n = fids.shape[0]
    if len(block_fits) != b_n:
        raise ValueError(f"{b_n} FIDs but {len(block_fits)} block fits")
    ok = np.array([bool(f.success) for f in block_fits]) if ok is None else np.asarray(ok, bool)
    x_blocks = np.array([f.x for f in block_fits], float)
    shared = shared_mask(tuple(fitter.param_names))
    if hold is not None:
        shared = shared | np.asarray(hold, bool)
    k_shared = int(np.sum(shared & np.asarray(fitter.free, bool)))
    # A block whose lines really differ (motion broadens them for a block or two) does not fit the
    # smooth lineshape: its cost rises by far more than the chi2(k) that fixing k widths costs by
    # chance. Such blocks keep their own fit and are left out of the smoothing (second pass).
    limit = k_shared + 4.0 * np.sqrt(2.0 * max(k_shared, 1))
    own = np.zeros(b_n, bool) if keep_own is None else np.asarray(keep_own, bool) & ok
    for _ in range(2):
        xs_smooth, n_eff = smooth_parameters(x_blocks, t_s, ok & ~own, smooth_s)
        results = [_held_fit(fitter, shared, fids[b], x_blocks[b], xs_smooth[b]) for b in range(b_n)]
        delta = np.array([(r.cost - f.cost) / max(f.noise_var, 1e-300) if ok[b] else 0.0
                          for b, (r, f) in enumerate(zip(results, block_fits, strict=True))])
        mismatch = ok & ~own & ~(delta <= limit)
        if not mismatch.any():
            break
        own |= mismatch
    names = tuple(block_fits[0].names)
    conc = np.zeros((b_n, len(names)))
    cov = np.zeros((b_n, len(names), len(names)))
    x_out = np.zeros_like(x_blocks)
    final = []
    for b in range(b_n):
        full = np.asarray(block_fits[b].cov, float)
        res = block_fits[b] if own[b] else results[b]
        final.append(res)
        x_out[b] = res.x
        conc[b] = [res.conc[n] for n in names]
        if own[b]:
            cov[b] = full
            n_eff[b] = 1.0
            continue
        cond = np.nan_to_num(np.asarray(res.cov, float))
        if ok[b] and np.all(np.isfinite(full)):
            cov[b] = cond + (full - cond) / max(float(n_eff[b]), 1.0)
        else:  # no usable block CRLB: the conditional one (widths treated as known)
            cov[b] = cond
    return DynamicResult(names, conc, cov, x_out, n_eff, tuple(final), own)


def _held_fit(fitter, shared: np.ndarray, fid: np.ndarray, x_block: np.ndarray, x_smooth: np.ndarray):
    start = np.where(shared, x_smooth, x_block) if np.all(np.isfinite(x_block)) else x_smooth
    held = _held_fitter(fitter, shared, start)
    return held.fit(fid, x0=np.clip(start, held.lo, held.hi))


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
