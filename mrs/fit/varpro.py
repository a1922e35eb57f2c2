"""Linear-combination fit by variable projection, in the frequency domain over a ppm window.

Model (window only, complex):
    S(nu) = exp(i (phi0 + phi1 (nu - nu_c))) * [ sum_m c_m A_m(nu; theta_g(m)) + sum_k beta_k Q_k(nu) ]
with A_m = FFT(fid_m(t) * lineshape_g(t)) for each group g (metabolites, macromolecules), c_m >= 0
(NNLS), complex baseline coefficients beta_k on a fixed real basis Q (B-spline or polynomial,
orthonormalised). Since |exp(i phi)| = 1, the residual equals exp(-i phi) Y - (A c + Q beta): the
baseline is projected out once, the concentrations are solved exactly at every step (NNLS on the
Gram matrix) and only the few nonlinear parameters theta = (phi0, phi1, per-group shift and
broadening) are iterated, by Levenberg-Marquardt on the Kaufman variable-projection Jacobian.

This module sets the fitter up (grid, basis, groups, parameter layout, priors) and runs a fit
(starts, refinement); the model's evaluation and Jacobian are in evaluation.py, the optimiser in
lm.py, the covariance and result in uncertainty.py, the linear algebra in linear.py, the settings in
settings.py, the added MM lines in mm_completion.py, the lineshape kernel in kernel.py and the ratio
priors in priors.py.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.fft as sfft

from mrs.basis import WATER_PPM, Basis
from mrs.fit import crlb as _crlb
from mrs.fit.evaluation import ModelEvaluation
from mrs.fit.kernel import LineshapeKernel
from mrs.fit.linear import baseline_matrix, nnls_gram_many, re_inner
from mrs.fit.lm import levenberg_marquardt
from mrs.fit.mm_completion import AUX_MM_LINES, AUX_MM_RESOLVED_PPM, complete_macromolecules
from mrs.fit.models import get_model
from mrs.fit.priors import ratio_prior_rows
from mrs.fit.result import FitResult
from mrs.fit.settings import FitError, FitSettings
from mrs.fit.uncertainty import finish
from mrs.macromolecules import area_prior_rows
from mrs.names import canonical, is_macromolecule

__all__ = ["AUX_MM_LINES", "AUX_MM_RESOLVED_PPM", "FitError", "FitSettings", "LCFitter", "baseline_matrix",
           "complete_macromolecules"]


def _times_power_of_two(a: np.ndarray, exponent: int) -> np.ndarray:
    """a * 2**exponent in two exact steps (2**exponent alone overflows beyond 1023)."""
    half = exponent // 2
    return a * 2.0 ** half * 2.0 ** (exponent - half)


def _entries_at_unit_peak(basis: Basis) -> tuple[Basis, np.ndarray]:
    """Each entry scaled by a power of two to a peak modulus in [0.5, 1), and the exponents.

    Other groups' bases come in any units (1e-30 or 1e30 per proton), and an entry can be in other
    units than the rest (a MM spectrum measured separately). Unscaled, a basis at 1e-30 lost every
    metabolite to the added MM lines (fid[0] = 1) in the "signal in the window" test, at 1e30 the
    added lines were lost, and one entry 1e10 above the rest left only itself. A power of two
    scales exactly, so a basis in ordinary units fits bit for bit as before."""
    peaks = np.abs(basis.fids).max(axis=1)
    exps = np.array([int(np.frexp(float(p))[1]) if p > 0 else 0 for p in peaks], int)
    if not exps.any():
        return basis, exps
    fids = np.stack([_times_power_of_two(f, -int(e)) for f, e in zip(basis.fids, exps, strict=True)])
    return dataclasses.replace(basis, fids=fids), exps


class LCFitter(ModelEvaluation):
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
        basis, unit_exp = _entries_at_unit_peak(basis)
        if s.complete_mm:
            basis = complete_macromolecules(basis, s.aux_mm_lines)
        unit_exp = np.concatenate([unit_exp, np.zeros(len(basis.names) - unit_exp.size, int)])
        fids = np.asarray(basis.resampled(dwell_s, n_points, cf_mhz, centre_ppm))
        self.t = np.arange(self.n) * self.dwell_s
        self._setup_window()
        is_mm, keep = self._setup_basis(basis, fids)
        self.scale = np.ldexp(self.scale, unit_exp[keep])  # concentrations in the basis file's units
        self._setup_area_priors(fids[keep], is_mm)
        self._setup_ratio_priors()
        self._setup_parameters(is_mm)
        self.bg = self._background_columns(fids.shape[1])
        self._setup_template()

    def _setup_window(self) -> None:
        """The window's bins (ascending frequency), its ppm and the baseline's orthonormal basis."""
        s = self.settings
        lo, hi = sorted(s.window_ppm)
        freq = np.fft.fftfreq(self.n, self.dwell_s)
        ppm_all = self.centre_ppm + freq / self.cf_mhz
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

    def _setup_basis(self, basis: Basis, fids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Names, normalised FIDs and groups (metabolites first, then macromolecules); returns the
        MM mask of the kept entries and the mask of entries kept (signal in the window)."""
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
        self.fids = fids[keep] / self.scale[:, None]  # full grid (QC, templates)
        self._setup_model_grid()
        is_mm = is_mm[keep]
        self.groups: list[tuple[str, np.ndarray, bool]] = []
        for g, mask, mm in group_defs:
            m = mask[keep]
            if m.any():
                self.groups.append((g, np.nonzero(m)[0], mm))
        self._is_met = ~is_mm
        # Row selectors per group: a slice when the group is contiguous (no copies), else indices.
        self._group_rows = [slice(int(idx[0]), int(idx[-1]) + 1) if np.all(np.diff(idx) == 1) else idx
                            for _, idx, _ in self.groups]
        return is_mm, keep

    def _setup_parameters(self, is_mm: np.ndarray) -> None:
        """Parameter layout, bounds and Gaussian priors: phases, each group's lineshape, the
        per-entry offsets (_setup_offsets), the kernel's taps."""
        s = self.settings
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
        lsets = self._setup_offsets(is_mm, len(names))
        names += [f"{'dlorentz_hz' if ls[4] == 'l' else 'dshift_hz'}_{ls[0]}" for ls in lsets]
        lo_b += [ls[3][0] for ls in lsets]
        hi_b += [ls[3][1] for ls in lsets]
        k_bins = int(round(s.kernel_half_width_ppm * self.cf_mhz / self.df_hz))
        self.kernel = LineshapeKernel(k_bins, self._win_m, self._nm) if k_bins > 0 else None
        n_taps = self.kernel.n_taps if self.kernel else 0
        self.kernel_slice = slice(len(names), len(names) + n_taps)
        names += [f"kernel_{j:+d}" for j in (self.kernel.offsets if self.kernel else [])]
        # taps >= 0: a field distribution has no negative density; an antisymmetric (signed)
        # kernel would mimic a dispersive line and trade with the zero-order phase
        lo_b += [0.0] * n_taps
        hi_b += [s.kernel_bound] * n_taps
        self.param_names = tuple(names)
        self.prior_mu = np.zeros(len(names))
        self.prior_sd = np.full(len(names), np.inf)
        self.prior_sd[self.each_slice] = self.each_sd
        self.prior_sd[self.kernel_slice] = s.kernel_sd
        if s.lorentz_prior_hz is not None and "lorentz_hz_met" in names:
            k = names.index("lorentz_hz_met")
            self.prior_mu[k], self.prior_sd[k] = s.lorentz_prior_hz
        if s.mm_lorentz_prior_hz is not None and "lorentz_hz_mm" in names:
            k = names.index("lorentz_hz_mm")
            self.prior_mu[k], self.prior_sd[k] = s.mm_lorentz_prior_hz
        self.lo = np.array(lo_b, float)
        self.hi = np.array(hi_b, float)
        self.free = self.hi > self.lo

    def _setup_offsets(self, is_mm: np.ndarray, first: int) -> list:
        """Per-entry offsets on top of the group lineshapes, from parameter `first` on: each T2 set's
        extra Lorentzian, each MM entry's Lorentzian and shift. (label, member indices, prior SD,
        bounds, kind): kind "l" is an extra Lorentzian exp(-pi d t), "s" a shift exp(i 2 pi d t)."""
        s = self.settings
        lsets: list[tuple[str, np.ndarray, float, tuple[float, float], str]] = []
        canon = [canonical(n) for n in self.names]
        for members in s.t2_sets:
            idx = np.array([i for i, c in enumerate(canon) if c in members and not is_mm[i]], int)
            if idx.size:
                lsets.append(("+".join(members), idx, s.t2_set_sd_hz, s.t2_set_bounds_hz, "l"))
        each_mm = [i for i in np.nonzero(is_mm)[0]
                   if s.mm_each_lipids or not self.names[i].strip().lower().startswith("lip")]
        if s.mm_each:
            for i in each_mm:
                lsets.append((self.names[i], np.array([i]), s.mm_each_sd_hz, s.mm_each_bounds_hz, "l"))
        if s.mm_shift_each:
            for i in each_mm:
                lsets.append((self.names[i], np.array([i]), s.mm_shift_sd_hz, s.mm_shift_bounds_hz, "s"))
        self.lsets = lsets
        self.each_sd = np.array([ls[2] for ls in lsets], float)
        self.each_slice = slice(first, first + len(lsets))
        self.each_idx = np.arange(len(lsets))  # kept for `.size` checks
        # membership matrix (n_sets, M): which entries each offset broadens
        self._lset_mat = np.zeros((len(lsets), len(self.names)))
        for k, ls in enumerate(lsets):
            self._lset_mat[k, ls[1]] = 1.0
        # exponent factor per set: -pi t (Lorentzian) or i 2 pi t (shift)
        self._lset_kind = np.array([-np.pi + 0j if ls[4] == "l" else 2j * np.pi for ls in lsets])
        self._k_fine = np.arange(64)
        self._k_coarse = np.arange(-(-self._nm // 64)) * 64
        # sets with the same members (an MM entry's Lorentzian and shift) share one FFT in the
        # Jacobian: d/d(lorentz) = (-pi t), d/d(shift) = (2 pi i t), both times the same signal
        pats, self._lset_pat = (np.unique(self._lset_mat, axis=0, return_inverse=True)
                                if len(lsets) else (np.zeros((0, len(self.names))), np.zeros(0, int)))
        self._lset_pats = pats
        self._lset_pat = np.asarray(self._lset_pat).ravel()
        # members of each pattern by rank, for sums without a (mostly zero) matrix product:
        # ranks[r] = (patterns with an r-th member, that member's row)
        members = [np.nonzero(row)[0] for row in pats]
        self._pat_ranks = [(np.array([k for k, mm in enumerate(members) if mm.size > r], int),
                            np.array([mm[r] for mm in members if mm.size > r], int))
                           for r in range(max((mm.size for mm in members), default=0))]
        member = self._lset_mat.any(axis=0)
        edges = np.diff(np.concatenate([[0], member.astype(int), [0]]))
        self._lset_runs = list(zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0], strict=True))
        return lsets

    def _setup_template(self) -> None:
        """Template for the coarse shift/phase search: sum of metabolite spectra (full, fftshifted)."""
        met = self.groups[0][1] if not self.groups[0][2] else np.arange(len(self.names))
        p_met = self.model.initial(False)
        # unit concentrations in the basis's units, over a power of two (exact) that keeps any units finite
        weight = np.ldexp(self.scale[met], -int(np.frexp(float(self.scale[met].max()))[1]))
        tmpl = sfft.fft((self.fids[met] * weight[:, None]).sum(0) * self.model.lineshape(self.t, p_met))
        self._template_sh = np.fft.fftshift(tmpl)
        self._win_sh = np.sort((self.win + self.n // 2) % self.n)  # contiguous in fftshift order

    def _setup_model_grid(self) -> None:
        """The model's own time grid: the basis band-limited to the window +- margin, demodulated
        to the window centre and decimated by `self.decimation` (1 when the band needs the full
        bandwidth). Its FFT bin j is the full spectrum's bin k_c + j, so the window is `_win_m`."""
        n = self.n
        margin = self.settings.model_margin_ppm
        span_hz = float(self.nu.max() - self.nu.min())
        dec = 1
        if margin is not None:
            need_hz = span_hz + 2.0 * float(margin) * self.cf_mhz
            bandwidth_hz = n * self.df_hz
            for d in (8, 4, 2):
                if n % d == 0 and need_hz <= bandwidth_hz / d:
                    dec = d
                    break
        self.decimation = dec
        self._nm = n // dec
        self._dtm = self.dwell_s * dec
        self._tm = np.arange(self._nm) * self._dtm
        k_signed = np.where(self.win < n // 2, self.win, self.win - n)
        k_c = int(round(self.nu_c / self.df_hz))
        self._win_m = (k_signed - k_c) % self._nm
        if dec == 1:
            fids_m = self.fids
            self._win_m = self.win
        else:
            band = (k_c + np.fft.fftfreq(self._nm, 1.0 / self._nm).round().astype(int)) % n
            fids_m = sfft.ifft(sfft.fft(self.fids, axis=1)[:, band], axis=1)
        self._fids_m = fids_m
        self._fids32 = fids_m.astype(np.complex64)
        self._each_cache: tuple[bytes, np.ndarray] | None = None
        self._passive: np.ndarray | None = None  # positive amplitudes of the last solve (a warm start)
        self._t32 = self._tm.astype(np.float32)
        self._t2_32 = (self._tm * self._tm).astype(np.float32)
        self._t64 = self._tm.astype(np.complex64)

    def _setup_area_priors(self, fids_raw: np.ndarray, is_mm: np.ndarray) -> None:
        """Prior rows on MM/lipid areas: D (n_rows, M) in the fitter's normalised amplitudes, so
        that (D c)_k = area_i - ratio * area_anchor, with its SD factor and anchor index."""
        m = len(self.names)
        self.area_unit = np.abs(self.fids[:, 0])  # area per unit normalised amplitude
        self.prior_d = np.zeros((0, m))
        self.prior_sd_rel = np.zeros(0)
        self.prior_anchor = np.zeros(0, int)
        self.mm_anchor: int | None = None
        if not self.settings.mm_priors or not is_mm.any():
            return
        freq = np.fft.fftfreq(self.n, self.dwell_s)
        ppm_all = self.centre_ppm + freq / self.cf_mhz
        peak = np.full(m, np.nan)
        for i in np.nonzero(is_mm)[0]:
            peak[i] = ppm_all[int(np.argmax(np.abs(np.fft.fft(fids_raw[i]))))]
        is_lip = np.array([n.strip().lower().startswith("lip") for n in self.names])
        rows = area_prior_rows(self.names, peak, is_lip)
        if not rows:
            return
        d = np.zeros((len(rows), m))
        for k, (i, j, ratio, _) in enumerate(rows):
            d[k, i] += self.area_unit[i]
            d[k, j] -= ratio * self.area_unit[j]
        self.prior_d = d
        self.prior_sd_rel = np.array([r[3] for r in rows]) * self.settings.mm_prior_sd_scale
        self.prior_anchor = np.array([r[1] for r in rows], int)
        self.mm_anchor = min((i for i in range(m) if is_mm[i] and not is_lip[i]),
                             key=lambda i: abs(peak[i] - 0.91), default=None)

    def _setup_ratio_priors(self) -> None:
        """Rows conc_i - ratio * sum(conc_den) (mrs.fit.priors), in normalised amplitudes."""
        rows = ratio_prior_rows(self.names) if self.settings.ratio_priors else []
        d = np.zeros((len(rows), len(self.names)))
        for k, (i, den, ratio, _) in enumerate(rows):
            d[k, i] += 1.0 / self.scale[i]
            for j in den:
                d[k, j] -= ratio / self.scale[j]
        self.ratio_d = d
        self.ratio_den = [den for _, den, _, _ in rows]
        self.ratio_sd = np.array([r[3] for r in rows]) * self.settings.ratio_prior_sd_scale
        self.has_priors = bool(self.prior_d.shape[0] or self.ratio_d.shape[0])

    def _background_columns(self, n: int) -> np.ndarray:
        s = self.settings
        if s.background_spacing_ppm <= 0:
            return np.zeros((self.win.size, 0), complex)
        top = float(self.ppm.max())
        pos = np.arange(max(s.background_start_ppm, float(self.ppm.min())), top + 1e-9, s.background_spacing_ppm)
        w_hz = s.background_fwhm_ppm * self.cf_mhz
        f_hz = (pos - self.centre_ppm) * self.cf_mhz
        fid = np.exp(2j * np.pi * np.outer(f_hz, self.t) - (np.pi * w_hz * self.t) ** 2 / (4 * np.log(2))
                     - np.pi * s.background_lorentz_hz * self.t)
        cols = sfft.fft(fid, axis=1)[:, self.win].T
        cols = cols / np.linalg.norm(cols, axis=0)
        self.bg_ppm = pos
        return cols

    # ------------------------------------------------------------------ model evaluation


    # ------------------------------------------------------------------ starting values
    def initial_guess(self, yw_sh_full: np.ndarray) -> np.ndarray:
        """Shift and zero-order phase by complex cross-correlation with the metabolite template
        over integer-bin shifts (phase-invariant magnitude, phase from the peak's angle)."""
        return self.initial_guesses(yw_sh_full, 1)[0]

    def initial_guesses(self, yw_sh_full: np.ndarray, n: int = 2) -> list[np.ndarray]:
        """The `n` best local maxima of the cross-correlation magnitude, best first, each as a start
        (shift and phase0 over the full circle), and for n > 1 the two bins either side of the best
        one. Each start costs one model evaluation; they guard against a correlation peak pulled
        aside by water, lipid or a baseline, whose angle is then off too."""
        k_max = int(np.ceil(self.settings.max_shift_hz / self.df_hz))
        ks = np.arange(-k_max, k_max + 1)
        idx = self._win_sh[None, :] - ks[:, None]
        valid = (idx >= 0) & (idx < self.n)
        tm = np.where(valid, self._template_sh[np.clip(idx, 0, self.n - 1)], 0)
        corr = (tm.conj() * yw_sh_full[self._win_sh][None, :]).sum(1)
        mag = np.abs(corr)
        padded = np.concatenate([[-1.0], mag, [-1.0]])
        peaks = np.nonzero((mag >= padded[:-2]) & (mag >= padded[2:]))[0]
        picks = list(peaks[np.argsort(-mag[peaks])][:max(1, n)]) if peaks.size else [int(np.argmax(mag))]
        if n > 1:  # the bins next to the best peak too (it can sit a bin or two off, its angle with it)
            picks += [k for k in range(picks[0] - 2, picks[0] + 3) if 0 <= k < mag.size and k not in picks]
        return [self._shifted_start(float(ks[best] * self.df_hz), float(np.angle(corr[best]))) for best in picks]

    def grid_starts(self, yw: np.ndarray, n: int = 2, step_hz: float = 2.0, n_phases: int = 24,
                    phase_origin_rad: float = 0.0) -> list[np.ndarray]:
        """The `n` best (shift, phase0) pairs of a grid over the full shift range and the full phase
        circle, by the fit's own cost (amplitudes by NNLS, baseline projected out, the initial
        lineshape), best first and at least 3 steps apart in shift or 45 degrees in phase.

        The correlation starts can miss the right shift altogether when broad signal dominates
        the correlation (a cold fit on spant-final landed 20 Hz and 3.6 rad off, reduced chi-square
        3.4). The phase costs no model evaluation: for one shift only the right-hand side turns.
        `phase_origin_rad`: where the phase grid starts (the correlation's phase keeps the fit
        of rotated data the same fit rotated)."""
        yt = self._project_baseline(yw)
        shifts = np.arange(-self.settings.max_shift_hz, self.settings.max_shift_hz + 1e-9, step_hz)
        phases = phase_origin_rad + np.arange(n_phases) * (2 * np.pi / n_phases)
        turn = np.exp(-1j * phases)
        cost = np.empty((shifts.size, phases.size))
        norm = float(np.vdot(yt, yt).real)
        for i, sh in enumerate(shifts):
            x = self._shifted_start(float(sh), 0.0)
            _, a, _ = self._spectra(x)
            if self.bg.shape[1]:
                a = np.hstack([a, self.bg])
            at = self._project_baseline(a)
            gram = re_inner(at, at)
            proj = at.conj().T @ yt  # a^H y; at phase p the right-hand side is Re(e^{-ip} a^H y)
            rhs = (proj[:, None] * turn[None, :]).real
            c = nnls_gram_many(gram, rhs)
            cost[i] = norm - 2 * np.sum(c * rhs, axis=0) + np.sum(c * (gram @ c), axis=0)
        out: list[tuple[float, float]] = []
        for flat in np.argsort(cost, axis=None):
            i, j = np.unravel_index(flat, cost.shape)
            dph = [abs((phases[j] - p + np.pi) % (2 * np.pi) - np.pi) for _, p in out]
            if all(abs(shifts[i] - s) >= 3 * step_hz or d >= np.pi / 4 for (s, _), d in zip(out, dph, strict=True)):
                out.append((float(shifts[i]), float(phases[j])))
            if len(out) == n:
                break
        return [self._shifted_start(s, p) for s, p in out]

    def _shifted_start(self, shift_hz: float, phase0_rad: float) -> np.ndarray:
        x = np.zeros(len(self.param_names))
        x[0] = phase0_rad if -np.pi < phase0_rad <= np.pi else float(np.angle(np.exp(1j * phase0_rad)))
        for (_, _, mm), sl in zip(self.groups, self.slices, strict=True):
            x[sl] = self.model.with_shift(self.model.initial(mm), shift_hz)
        return np.clip(x, self.lo, self.hi)

    # ------------------------------------------------------------------ the fit
    def fit(self, fid: np.ndarray, x0: np.ndarray | None = None, hold: np.ndarray | None = None) -> FitResult:
        """Fit one FID (n_points,) complex. `x0`: nonlinear parameters to warm-start from (e.g. the
        previous block's `result.x`); the better of it and the data-driven guess is used.
        `hold`: mask of parameters kept at their `x0` values (e.g. `session_mask()`: the lineshape
        details a session reference has fixed); they are then not free in the CRLB either."""
        t0 = time.perf_counter()
        fid = np.asarray(fid, dtype=complex).ravel()
        if fid.size != self.n:
            raise FitError(f"FID has {fid.size} points, the fitter was built for {self.n}")
        if not np.all(np.isfinite(fid)):
            return self._failed(fid, "data contain NaN or infinity")
        # Fitted at a peak modulus in [0.5, 1): other tools store data in any units, and at 1e-200
        # the Fisher matrix underflowed (LinAlgError) and at 1e40 the single-precision model
        # products overflowed. A power of two scales without rounding, so the fit is the same.
        exponent = int(np.frexp(float(np.abs(fid).max()))[1])
        if exponent:
            fid = _times_power_of_two(fid, -exponent)
        res = self._fit(fid, x0, hold, t0)
        return res.rescaled(float(np.ldexp(1.0, exponent))) if exponent else res

    def _fit(self, fid: np.ndarray, x0: np.ndarray | None, hold: np.ndarray | None, t0: float) -> FitResult:
        spec = sfft.fft(fid, workers=1)
        yw = spec[self.win]
        if not np.any(yw):
            return self._failed(fid, "data are zero inside the fit window")
        # Noise per real component of the spectrum, from the outermost frequencies (no signal).
        noise_var = _crlb.edge_noise_variance(spec)
        prior_w = np.sqrt(max(noise_var, 1e-300)) / self.prior_sd  # zero where there is no prior
        nfev = 0
        best = None
        dof = max(2 * yw.size - len(self.names) - 2 * self.q.shape[1] - len(self.param_names), 1)

        prior = None
        x0_ok = x0 is not None and np.shape(x0) == (len(self.param_names),) and np.all(np.isfinite(x0))
        held = np.zeros(len(self.param_names), bool)
        if x0_ok and hold is not None:
            held = np.asarray(hold, bool) & self.free
        free = self.free & ~held

        def total(xs: np.ndarray, state: tuple) -> float:
            return float(np.vdot(state[0], state[0]).real) + float(np.sum((prior_w * (xs - self.prior_mu)) ** 2))

        starts: list[tuple[np.ndarray, float, tuple]] = []

        def consider(xs: np.ndarray) -> None:
            nonlocal best, nfev, prior
            make = None
            if prior is None and self.has_priors:
                def make(c_free: np.ndarray) -> np.ndarray | None:
                    return self._prior_rows(c_free, noise_var)
            state = self._state(xs, yw, prior, make)
            prior = state[7]
            nfev += 1
            starts.append((xs, total(xs, state), state))
            if best is None or starts[-1][1] < best[1]:
                best = starts[-1]

        if x0_ok:
            x0c = np.clip(np.asarray(x0, float), self.lo, self.hi)
            consider(x0c)
        # The data-driven guess (shift/phase search) unless the warm start already fits well
        # (reduced chi-square below 2: the previous block's lineshape is still right).
        if best is None or best[1] / dof > 2.0 * noise_var:
            for guess in self.initial_guesses(np.fft.fftshift(spec), self.settings.n_starts):
                if held.any():
                    guess[held] = x0c[held]
                consider(guess)
        # A cold fit (no warm start: a file, the first block) refines its best `n_starts` starts and
        # keeps the lowest final cost: the flexible model has local minima (a phase error traded
        # against the lineshape, a shift against the kernel) that one descent can fall into.
        n_refine = 1 if x0_ok else max(1, self.settings.n_starts)
        refine = sorted(starts, key=lambda c: c[1])[:n_refine]
        if not x0_ok and self.settings.grid_starts:
            # ... and the grid's best, refined as well (not instead: a lower starting cost can
            # descend into a worse minimum, so the final cost is kept only from a superset)
            n_before = len(starts)
            for guess in self.grid_starts(yw, self.settings.grid_starts, phase_origin_rad=float(best[0][0])):
                consider(guess)
            refine += sorted(starts[n_before:], key=lambda c: c[1])[:self.settings.grid_starts]
        fits = []
        for xs, _, st in refine:
            x, status, message, n_lm, state = levenberg_marquardt(self, xs, yw, prior_w, st, prior, free)
            nfev += n_lm
            fits.append((total(x, state), x, status, message, state))
        _, x, status, message, state = min(fits, key=lambda f: f[0])
        if len(fits) > 1:
            # one more descent from the winner with a fresh damping: a descent that needed strong
            # damping can stop on a small step with the minimum still some noise variances away
            x, status, message, n_lm, state = levenberg_marquardt(self, x, yw, prior_w, state, prior, free)
            nfev += n_lm
        return finish(self, x, state, status, message, nfev, t0, prior_w, noise_var, free)

    def session_mask(self) -> np.ndarray:
        """Parameters that describe the session rather than the block: each T2 set's and each
        macromolecule's own width and shift offsets. Taken from the session's first blocks, they can
        be held for every block (`hold`). (Not the groups' shifts and broadenings: drift, shim and
        motion change those from block to block.)"""
        mask = np.zeros(len(self.param_names), bool)
        mask[self.each_slice] = True
        mask[self.kernel_slice] = True  # the lineshape's shape (the voxel's field distribution)
        return mask & self.free

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
                fid = self.fids[i] * self.scale[i] * self.model.lineshape(self.t, x[sl])
                if self.each_idx.size:  # its own T2-set / MM offsets
                    rate = (x[self.each_slice] * self._lset_kind) @ self._lset_mat[:, i]
                    fid = fid * np.exp(rate * self.t)
                if self.kernel is not None:  # the free lineshape, on the full time grid
                    w = x[self.kernel_slice]
                    fid = fid * ((1.0 - w.sum()) + w @ np.exp(2j * np.pi * np.outer(self.kernel.offsets, self.t)
                                                               * self.df_hz))
                return fid
        return None
