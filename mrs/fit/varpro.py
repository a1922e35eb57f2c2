"""Linear-combination fit by variable projection, in the frequency domain over a ppm window.

Model (window only, complex):
    S(nu) = exp(i (phi0 + phi1 (nu - nu_c))) * [ sum_m c_m A_m(nu; theta_g(m)) + sum_k beta_k Q_k(nu) ]
with A_m = FFT(fid_m(t) * lineshape_g(t)) for each group g (metabolites, macromolecules), c_m >= 0
(NNLS), complex baseline coefficients beta_k on a fixed real basis Q (B-spline or polynomial,
orthonormalised). Since |exp(i phi)| = 1, the residual equals exp(-i phi) Y - (A c + Q beta): the
baseline is projected out once, the concentrations are solved exactly at every step (NNLS on the
Gram matrix) and only the few nonlinear parameters theta = (phi0, phi1, per-group shift and
broadening) are iterated, by Levenberg-Marquardt on the Kaufman variable-projection Jacobian.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy.interpolate import BSpline
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.optimize import nnls

from mrs.basis import WATER_PPM, Basis
from mrs.fit import crlb as _crlb
from mrs.fit.models import get_model
from mrs.fit.result import FitResult
from mrs.names import is_macromolecule


class FitError(ValueError):
    """A fit that cannot be set up (bad window, empty basis, ...)."""


@dataclass(frozen=True)
class FitSettings:
    window_ppm: tuple[float, float] = (0.2, 4.2)
    model: str = "voigt"
    baseline: str = "spline"              # "spline" | "poly" | "none"
    baseline_knot_spacing_ppm: float = 1.0  # spline: distance between knots
    baseline_order: int = 3               # poly: highest order; spline: degree
    max_shift_hz: float = 25.0            # metabolite group; macromolecules get half around it
    phase1: bool = True
    max_phase1_ms: float = 0.5            # |phi1| <= 2 pi * this delay
    max_iter: int = 40
    ftol: float = 1e-7                    # stop when the relative cost decrease falls below
    xtol: float = 1e-6                    # or the scaled step does


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


def _nnls_gram(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """min_c>=0 c'Gc - 2c'h, via NNLS on the Cholesky factor (tiny, fast)."""
    n = gram.shape[0]
    ridge = 1e-12 * max(float(np.trace(gram)) / max(n, 1), 1e-300)
    try:
        low = np.linalg.cholesky(gram + ridge * np.eye(n))
    except np.linalg.LinAlgError:
        low = np.linalg.cholesky(gram + 1e-8 * float(np.trace(gram)) / n * np.eye(n))
    y = solve_triangular(low, rhs, lower=True)
    c, _ = nnls(low.T, y, maxiter=10 * n)
    return c


class LCFitter:
    """A fitter bound to one data grid and basis; `fit(fid)` fits one (averaged) FID.

    Everything that does not depend on the data (basis on the data grid, window indices, baseline
    projector, normalisation) is computed once here.
    """

    def __init__(self, basis: Basis, dwell_s: float, n_points: int, cf_mhz: float,
                 centre_ppm: float = WATER_PPM, settings: FitSettings | None = None) -> None:
        self.settings = s = settings or FitSettings()
        self.model = get_model(s.model)
        self.n = int(n_points)
        self.dwell_s = float(dwell_s)
        self.cf_mhz = float(cf_mhz)
        self.centre_ppm = float(centre_ppm)
        lo, hi = sorted(s.window_ppm)
        fids = np.asarray(basis.resampled(dwell_s, n_points, cf_mhz, centre_ppm))
        self.t = np.arange(self.n) * self.dwell_s
        freq = np.fft.fftfreq(self.n, self.dwell_s)
        ppm_all = centre_ppm + freq / cf_mhz
        win = np.nonzero((ppm_all >= lo) & (ppm_all <= hi))[0]
        if win.size < 16:
            raise FitError(f"fit window {lo}-{hi} ppm holds only {win.size} points of the spectrum")
        self.win = win[np.argsort(freq[win])]
        self.nu = freq[self.win]
        self.nu_c = float(self.nu.mean())
        self.dnu = self.nu - self.nu_c
        self.ppm = ppm_all[self.win]
        self.df_hz = 1.0 / (self.n * self.dwell_s)
        bl = baseline_matrix(self.ppm, s)
        self.q = np.linalg.qr(bl)[0] if bl.shape[1] else np.zeros((self.win.size, 0))

        # Groups: metabolites first, then macromolecules (if any).
        is_mm = np.array([is_macromolecule(n) for n in basis.names])
        group_defs = [("met", ~is_mm, False), ("mm", is_mm, True)]
        # Normalise each spectrum in the window at the starting lineshape (conditioning), and drop
        # entries with no signal in the window.
        p0 = {g: self.model.initial(mm) for g, _, mm in group_defs}
        spec0 = np.empty((len(basis.names), self.win.size), complex)
        for g, mask, _ in group_defs:
            if mask.any():
                spec0[mask] = sfft.fft(fids[mask] * self.model.lineshape(self.t, p0[g]), axis=1)[:, self.win]
        norms = np.linalg.norm(spec0, axis=1)
        keep = norms > 1e-9 * max(float(norms.max()), 1e-300)
        if not keep.any():
            raise FitError("no basis spectrum has signal inside the fit window")
        self.all_names = tuple(basis.names)
        self.names = tuple(n for n, k in zip(basis.names, keep, strict=True) if k)
        self.excluded = tuple(n for n, k in zip(basis.names, keep, strict=True) if not k)
        self.scale = norms[keep]
        self.fids = fids[keep] / self.scale[:, None]
        is_mm = is_mm[keep]
        self.groups: list[tuple[str, np.ndarray, bool]] = []
        for g, mask, mm in group_defs:
            m = mask[keep]
            if m.any():
                self.groups.append((g, np.nonzero(m)[0], mm))

        # Parameter layout and bounds.
        names = ["phi0", "phi1"]
        lo_b = [-np.inf, -2 * np.pi * s.max_phase1_ms * 1e-3 if s.phase1 else 0.0]
        hi_b = [np.inf, 2 * np.pi * s.max_phase1_ms * 1e-3 if s.phase1 else 0.0]
        self.slices: list[slice] = []
        for g, _, mm in self.groups:
            b_lo, b_hi = self.model.bounds(mm, s.max_shift_hz)
            self.slices.append(slice(len(names), len(names) + len(b_lo)))
            names += [f"{p}_{g}" for p in self.model.param_names]
            lo_b += list(b_lo)
            hi_b += list(b_hi)
        self.param_names = tuple(names)
        self.lo = np.array(lo_b, float)
        self.hi = np.array(hi_b, float)
        self.free = self.hi > self.lo
        # Template for the coarse shift/phase search: sum of metabolite spectra (full, fftshifted).
        met = self.groups[0][1] if not self.groups[0][2] else np.arange(len(self.names))
        p_met = self.model.initial(False)
        tmpl = sfft.fft((self.fids[met] * self.scale[met, None]).sum(0) * self.model.lineshape(self.t, p_met))
        self._template_sh = np.fft.fftshift(tmpl)
        self._win_sh = np.sort((self.win + self.n // 2) % self.n)  # contiguous in fftshift order

    # ------------------------------------------------------------------ model evaluation
    def _spectra(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Time-domain broadened FIDs (M, N) and their window spectra (Nw, M)."""
        fl = np.empty_like(self.fids)
        for (_, idx, _), sl in zip(self.groups, self.slices, strict=True):
            fl[idx] = self.fids[idx] * self.model.lineshape(self.t, x[sl])
        a = sfft.fft(fl, axis=1, workers=1)[:, self.win].T
        return fl, a

    def _project_baseline(self, v: np.ndarray) -> np.ndarray:
        if self.q.shape[1] == 0:
            return v
        return v - self.q @ (self.q.T @ v)

    def _evaluate(self, x: np.ndarray, yw: np.ndarray, want_jac: bool):
        rot = np.exp(-1j * (x[0] + x[1] * self.dnu))
        z = yw * rot
        fl, a = self._spectra(x)
        at = self._project_baseline(a)
        zt = self._project_baseline(z)
        gram = (at.conj().T @ at).real
        rhs = (at.conj().T @ zt).real
        c = _nnls_gram(gram, rhs)
        r = zt - at @ c
        if not want_jac:
            return r, None, c, a, z, fl
        cols = [-1j * z, -1j * self.dnu * z]
        for (_, idx, _), sl in zip(self.groups, self.slices, strict=True):
            s_g = c[idx] @ fl[idx]
            d = sfft.fft(s_g[None, :] * self.model.log_derivatives(self.t, x[sl]), axis=1, workers=1)
            cols.extend(-d[:, self.win])
        jac = self._project_baseline(np.column_stack(cols))
        active = c > 0
        if active.any():
            aa = at[:, active]
            ga = gram[np.ix_(active, active)]
            try:
                coef = cho_solve(cho_factor(ga), (aa.conj().T @ jac).real)
                jac = jac - aa @ coef
            except np.linalg.LinAlgError:
                pass
        return r, jac, c, a, z, fl

    # ------------------------------------------------------------------ starting values
    def initial_guess(self, yw_sh_full: np.ndarray) -> np.ndarray:
        """Shift and zero-order phase by complex cross-correlation with the metabolite template
        over integer-bin shifts (phase-invariant magnitude, phase from the peak's angle)."""
        k_max = int(np.ceil(self.settings.max_shift_hz / self.df_hz))
        ks = np.arange(-k_max, k_max + 1)
        idx = self._win_sh[None, :] - ks[:, None]
        valid = (idx >= 0) & (idx < self.n)
        tm = np.where(valid, self._template_sh[np.clip(idx, 0, self.n - 1)], 0)
        corr = (tm.conj() * yw_sh_full[self._win_sh][None, :]).sum(1)
        best = int(np.argmax(np.abs(corr)))
        shift = float(ks[best] * self.df_hz)
        x = np.zeros(len(self.param_names))
        x[0] = float(np.angle(corr[best]))
        for (_, _, mm), sl in zip(self.groups, self.slices, strict=True):
            x[sl] = self.model.with_shift(self.model.initial(mm), shift)
        return np.clip(x, self.lo, self.hi)

    # ------------------------------------------------------------------ the fit
    def fit(self, fid: np.ndarray, x0: np.ndarray | None = None) -> FitResult:
        """Fit one FID (n_points,) complex. `x0`: nonlinear parameters to warm-start from (e.g. the
        previous block's `result.x`); the better of it and the data-driven guess is used."""
        t0 = time.perf_counter()
        fid = np.asarray(fid, dtype=complex).ravel()
        if fid.size != self.n:
            raise FitError(f"FID has {fid.size} points, the fitter was built for {self.n}")
        if not np.all(np.isfinite(fid)):
            return self._failed(fid, "data contain NaN or infinity")
        spec = sfft.fft(fid, workers=1)
        yw = spec[self.win]
        if not np.any(yw):
            return self._failed(fid, "data are zero inside the fit window")
        starts = [self.initial_guess(np.fft.fftshift(spec))]
        if x0 is not None and np.shape(x0) == starts[0].shape and np.all(np.isfinite(x0)):
            starts.append(np.clip(np.asarray(x0, float), self.lo, self.hi))
        nfev = 0
        best = None
        for xs in starts:
            r = self._evaluate(xs, yw, want_jac=False)[0]
            nfev += 1
            cost = float(np.vdot(r, r).real)
            if best is None or cost < best[1]:
                best = (xs, cost)
        x, status, message, n_lm = self._levenberg_marquardt(best[0], yw)
        nfev += n_lm
        return self._finish(x, yw, status, message, nfev, time.perf_counter() - t0)

    def _levenberg_marquardt(self, x: np.ndarray, yw: np.ndarray) -> tuple[np.ndarray, int, str, int]:
        s = self.settings
        free = self.free
        r, jac, *_ = self._evaluate(x, yw, want_jac=True)
        nfev = 1
        cost = float(np.vdot(r, r).real)
        lam = 1e-3
        for _ in range(s.max_iter):
            jf = jac[:, free]
            h = (jf.conj().T @ jf).real
            g = (jf.conj().T @ r).real
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
                x_new = np.clip(x_new, self.lo, self.hi)
                r_new, jac_new, *_ = self._evaluate(x_new, yw, want_jac=True)
                nfev += 1
                cost_new = float(np.vdot(r_new, r_new).real)
                if np.isfinite(cost_new) and cost_new < cost:
                    improved = True
                    break
                lam *= 4.0
            if not improved:
                return x, 1, "converged: no step lowers the cost", nfev
            rel = (cost - cost_new) / max(cost, 1e-300)
            scaled_step = np.abs(x_new - x)[free] * np.sqrt(dh) / max(np.sqrt(cost), 1e-300)
            x, r, jac, cost = x_new, r_new, jac_new, cost_new
            lam = max(lam / 3.0, 1e-9)
            if rel < s.ftol:
                return x, 1, "converged: relative cost change below ftol", nfev
            if float(scaled_step.max()) < s.xtol:
                return x, 2, "converged: step below xtol", nfev
        return x, 0, f"stopped after {s.max_iter} iterations", nfev

    def _finish(self, x: np.ndarray, yw: np.ndarray, status: int, message: str, nfev: int,
                elapsed_s: float) -> FitResult:
        r, _, c, a, z, fl = self._evaluate(x, yw, want_jac=False)
        beta = self.q.T @ (z - a @ c) if self.q.shape[1] else np.zeros(0, complex)
        base = self.q @ beta if self.q.shape[1] else np.zeros_like(z)
        metab = a @ c
        pred = metab + base
        resid = z - pred
        # Full-model Jacobian (d model / d parameter, in the de-phased frame) for the CRLB.
        cols = [1j * pred, 1j * self.dnu * pred]
        for (_, idx, _), sl in zip(self.groups, self.slices, strict=True):
            s_g = c[idx] @ fl[idx]
            d = sfft.fft(s_g[None, :] * self.model.log_derivatives(self.t, x[sl]), axis=1, workers=1)
            cols.extend(d[:, self.win])
        at_bound = (np.isclose(x, self.lo) | np.isclose(x, self.hi)) & np.isfinite(self.lo)
        nl_keep = self.free & ~at_bound
        jac_nl = np.column_stack(cols)[:, nl_keep]
        jac = np.column_stack([jac_nl, a, self.q.astype(complex), 1j * self.q])
        n_par = jac.shape[1]
        sigma2 = _crlb.noise_variance(resid, n_par)
        cov_all = _crlb.covariance(jac, sigma2)
        n_nl = jac_nl.shape[1]
        m = len(self.names)
        cov_c = cov_all[n_nl:n_nl + m, n_nl:n_nl + m] / np.outer(self.scale, self.scale)
        conc_raw = c / self.scale
        sd_raw = np.sqrt(np.clip(np.diag(cov_c), 0, None))
        # Re-embed excluded names so everything stays in basis order.
        full_names = self.all_names
        pos = {n: i for i, n in enumerate(self.names)}
        mfull = len(full_names)
        cov_full = np.zeros((mfull, mfull))
        sel = np.array([full_names.index(n) for n in self.names])
        cov_full[np.ix_(sel, sel)] = cov_c
        conc, sd, pct = {}, {}, {}
        for n in full_names:
            if n in pos:
                v, e = float(conc_raw[pos[n]]), float(sd_raw[pos[n]])
            else:
                v, e = 0.0, float("nan")
            conc[n], sd[n] = v, e
            pct[n] = 100.0 * e / v if v > 0 else float("inf")
        finite = np.all(np.isfinite(x)) and np.all(np.isfinite(conc_raw)) and np.isfinite(sigma2)
        params = {p: float(v) for p, v in zip(self.param_names, x, strict=True)}
        comps = {n: a[:, i] * c[i] for i, n in enumerate(self.names)}
        if not finite:
            status, message = -1, "fit produced non-finite values"
        return FitResult(
            names=full_names, conc=conc, sd=sd, crlb_pct=pct, cov=cov_full, params=params, x=x.copy(),
            success=bool(status >= 0 and finite), status=status,
            message=f"{message} ({elapsed_s * 1e3:.1f} ms)", nfev=nfev,
            cost=float(np.vdot(resid, resid).real), noise_var=sigma2, ppm=self.ppm.copy(), data=z,
            prediction=pred, baseline=base, components=comps,
            phase0_rad=float(x[0]), phase1_rad_per_hz=float(x[1]))

    def _failed(self, fid: np.ndarray, message: str) -> FitResult:
        m = len(self.all_names)
        nan = float("nan")
        zero = np.zeros(self.win.size, complex)
        return FitResult(
            names=self.all_names, conc={n: nan for n in self.all_names}, sd={n: nan for n in self.all_names},
            crlb_pct={n: nan for n in self.all_names}, cov=np.full((m, m), nan),
            params={p: nan for p in self.param_names}, x=np.full(len(self.param_names), nan),
            success=False, status=-1, message=message, nfev=0, cost=nan, noise_var=nan,
            ppm=self.ppm.copy(), data=zero, prediction=zero, baseline=zero, components={})

    # ------------------------------------------------------------------ helpers for QC
    def component_fid(self, name: str, x: np.ndarray) -> np.ndarray | None:
        """Unit-concentration time-domain signal of `name` with the fitted lineshape (for FWHM)."""
        if name not in self.names:
            return None
        i = self.names.index(name)
        for (_, idx, _), sl in zip(self.groups, self.slices, strict=True):
            if i in idx:
                return self.fids[i] * self.scale[i] * self.model.lineshape(self.t, x[sl])
        return None
