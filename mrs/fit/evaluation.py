"""The fit's model at given nonlinear parameters: basis spectra with their lineshapes, the variable
projection state (amplitudes by NNLS, residual with the prior rows) and the Kaufman Jacobian.

A mixin of mrs.fit.LCFitter (it uses the fitter's precomputed grid, basis, groups and priors);
apart so that the hot path of one evaluation reads in one place.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
from scipy.linalg import cho_factor, cho_solve

from mrs.fit.linear import nnls_gram, re_inner


class ModelEvaluation:
    def _prior_rows(self, c_free: np.ndarray, noise_var: float) -> np.ndarray | None:
        mm = self._mm_prior_rows(c_free, noise_var)
        if not self.ratio_d.shape[0]:
            return mm
        # SD relative to the denominator's concentration from the unconstrained solve (at least
        # 2 % of the largest metabolite's, so a missing denominator does not make the row rigid)
        m = len(self.names)
        conc = c_free[:m] / self.scale
        ref = np.array([conc[list(den)].sum() for den in self.ratio_den])
        # metabolites only: added MM lines are in their own units (fid[0] = 1), not the basis's
        ref = np.maximum(ref, max(0.02 * float(conc[self._is_met].max()), 1e-300))
        rows = self.ratio_d * (np.sqrt(max(noise_var, 1e-300)) / (self.ratio_sd * ref))[:, None]
        if self.bg.shape[1]:
            rows = np.hstack([rows, np.zeros((rows.shape[0], self.bg.shape[1]))])
        return rows if mm is None else np.vstack([mm, rows])

    def _mm_prior_rows(self, c_free: np.ndarray, noise_var: float) -> np.ndarray | None:
        """Weighted prior rows sqrt(noise_var) * D / (SD * reference area) (n_rows, M + n_bg).

        The SDs are relative to a reference area: the MM anchor's area from an unconstrained
        solve (at least 2 % of the metabolite area), or the row's own anchor's if larger
        (lipid contamination). Fixed for one fit so the cost stays one function."""
        if not self.prior_d.shape[0]:
            return None
        m = len(self.names)
        areas = c_free[:m] * self.area_unit
        floor = 0.02 * float(areas[self._is_met].sum())
        ref_mm = float(areas[self.mm_anchor]) if self.mm_anchor is not None else 0.0
        ref = np.maximum(np.maximum(areas[self.prior_anchor], ref_mm), max(floor, 1e-300))
        w = np.sqrt(max(noise_var, 1e-300)) / (self.prior_sd_rel * ref)
        rows = self.prior_d * w[:, None]
        if self.bg.shape[1]:
            rows = np.hstack([rows, np.zeros((rows.shape[0], self.bg.shape[1]))])
        return rows

    def _spectra(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Time-domain broadened FIDs (M, N), their window spectra (Nw, M), and the FIDs before
        the lineshape kernel (the same array when there is none)."""
        src = self._each_broadened(x)
        fl = np.empty_like(src)
        for rows, sl in zip(self._group_rows, self.slices, strict=True):
            if self.settings.single_precision:
                ls = self.model.lineshape32(self._t32, self._t2_32, x[sl])
            else:
                ls = self.model.lineshape(self._tm, x[sl])
            if isinstance(rows, slice):
                np.multiply(src[rows], ls, out=fl[rows])
            else:  # a group not contiguous in the basis (an MM entry among metabolites): `fl[rows]` would
                fl[rows] = src[rows] * ls  # be a copy, leaving those rows of `fl` uninitialised
        fl_pre = fl
        k_t = self.kernel.time_factor(x[self.kernel_slice]) if self.kernel is not None else None
        if k_t is not None:
            fl = fl * k_t[None, :]
        a = sfft.fft(fl, axis=1, workers=1)[:, self._win_m].T.astype(complex)
        return fl, a, fl_pre

    def _each_broadened(self, x: np.ndarray) -> np.ndarray:
        """The model basis with each entry's own offsets (T2 sets, MM width and shift) applied.
        Kept for the last offsets seen: with a session reference they are held, so every
        evaluation of every block reuses it."""
        src = self._fids32 if self.settings.single_precision else self._fids_m
        if not self.each_idx.size:
            return src
        key = x[self.each_slice].tobytes()
        if self._each_cache is not None and self._each_cache[0] == key:
            return self._each_cache[1]
        out = src.copy()
        rate = (x[self.each_slice] * self._lset_kind) @ self._lset_mat  # per-entry exponent rate
        # exp(rate k dt) = exp(rate (64 j) dt) * exp(rate i dt) with k = 64 j + i: two small
        # exp tables and one multiply per point (4x cheaper than exp/cos/sin per point);
        # applied in place on runs of consecutive rows (no fancy-index copies)
        for lo, hi in self._lset_runs:
            rd = rate[lo:hi] * self._dtm
            base = np.exp(np.outer(rd, self._k_fine)).astype(out.dtype)
            blk = np.exp(np.outer(rd, self._k_coarse)).astype(out.dtype)
            fac = (blk[:, :, None] * base[:, None, :]).reshape(hi - lo, -1)[:, :self._nm]
            out[lo:hi] *= fac
        self._each_cache = (key, out)
        return out

    def _kernel_jac(self, fl: np.ndarray, c: np.ndarray) -> np.ndarray:
        """d(A c)/d kernel taps (Nw, n_taps)."""
        m = fl.shape[0]
        full_sum = sfft.fft(c[:m].astype(fl.real.dtype) @ fl, workers=1)
        return self.kernel.jacobian(full_sum).astype(complex)

    def _each_jac(self, fl: np.ndarray, c: np.ndarray) -> np.ndarray:
        """d(A c)/d dlorentz_k for each set k (Nw, n_sets)."""
        cf = c.astype(fl.real.dtype)
        pk, rows = self._pat_ranks[0]  # every pattern has a first member, in pattern order
        sums = fl[rows] * cf[rows, None]
        for pk, rows in self._pat_ranks[1:]:
            sums[pk] += fl[rows] * cf[rows, None]
        sums *= self._t64 if fl.dtype == np.complex64 else self._tm  # (n_patterns, N)
        ft = sfft.fft(sums, axis=1, workers=1)[:, self._win_m]
        return (ft[self._lset_pat] * self._lset_kind[:, None]).T.astype(complex)

    def _project_baseline(self, v: np.ndarray) -> np.ndarray:
        if self.q.shape[1] == 0:
            return v
        # Q is real: project the real and imaginary parts as real columns (a complex product
        # would first copy Q to complex and do twice the work)
        v = np.ascontiguousarray(v)
        vr = v.view(np.float64).reshape(v.shape[0], -1)
        out = vr - self.q @ (self.q.T @ vr)
        return out.view(complex).reshape(v.shape)

    def _state(self, x: np.ndarray, yw: np.ndarray, prior: np.ndarray | None = None,
               make_prior=None) -> tuple:
        """Residual (data rows, then prior rows), amplitudes and intermediates at x.
        `make_prior(c)`: builds the prior rows from an unconstrained solve at x (no second FFT)."""
        rot = np.exp(-1j * (x[0] + x[1] * self.dnu))
        z = yw * rot
        fl, a, fl_pre = self._spectra(x)
        if self.bg.shape[1]:
            a = np.hstack([a, self.bg])
        at = self._project_baseline(a)
        zt = self._project_baseline(z)
        gram = re_inner(at, at)
        rhs = re_inner(at, zt)
        if prior is None and make_prior is not None:
            prior = make_prior(nnls_gram(gram, rhs))
        if prior is not None:
            gram = gram + prior.T @ prior
        c = nnls_gram(gram, rhs, self._passive)
        self._passive = c > 0
        r = zt - at @ c
        if prior is not None:
            r = np.concatenate([r, -(prior @ c)])
        return r, c, a, z, fl, at, gram, prior, fl_pre

    def _group_derivatives(self, x: np.ndarray, c: np.ndarray, fl: np.ndarray) -> np.ndarray:
        """d(A c)/d(group lineshape parameters), window only (Nw, n_group_params): one FFT call."""
        sigs = []
        for rows, sl in zip(self._group_rows, self.slices, strict=True):
            s_g = c[rows].astype(fl.real.dtype) @ fl[rows]
            sigs.append(s_g[None, :] * self.model.log_derivatives(self._tm, x[sl]).astype(fl.dtype))
        return sfft.fft(np.vstack(sigs), axis=1, workers=1)[:, self._win_m].T.astype(complex)

    def _jacobian(self, x: np.ndarray, state: tuple, free: np.ndarray | None = None) -> np.ndarray:
        _, c, _, z, fl, at, gram, prior, fl_pre = state
        parts = [(-1j * z)[:, None], (-1j * self.dnu * z)[:, None], -self._group_derivatives(x, c, fl)]
        if self.each_idx.size:
            if free is None or free[self.each_slice].any():
                parts.append(-self._each_jac(fl, c))
            else:  # all held (session reference): columns the step never uses
                parts.append(np.zeros((z.size, self.each_idx.size), complex))
        if self.kernel is not None:
            if free is None or free[self.kernel_slice].any():
                parts.append(-self._kernel_jac(fl_pre, c))
            else:
                parts.append(np.zeros((z.size, self.kernel.n_taps), complex))
        jac = np.hstack(parts)
        jac = self._project_baseline(jac)
        active = c > 0
        if active.any():
            aa = at[:, active]
            ga = gram[np.ix_(active, active)]
            try:
                # Re(aa^H jac) as two real products (half the work of the complex one)
                proj = re_inner(aa, jac)
                coef = cho_solve(cho_factor(ga, check_finite=False), proj, check_finite=False)
                jac = jac - aa @ coef
            except np.linalg.LinAlgError:
                coef = None
            if prior is not None:
                # rows of the augmented problem: the prior residual moves with c(theta)
                extra = -(prior[:, active] @ coef) if coef is not None else np.zeros((prior.shape[0], jac.shape[1]))
                jac = np.vstack([jac, extra.astype(jac.dtype)])
        elif prior is not None:
            jac = np.vstack([jac, np.zeros((prior.shape[0], jac.shape[1]), jac.dtype)])
        return jac
