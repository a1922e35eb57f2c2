"""Linear-combination fit by variable projection, in the frequency domain over a ppm window.

Model (window only, complex):
    S(nu) = exp(i (phi0 + phi1 (nu - nu_c))) * [ sum_m c_m A_m(nu; theta_g(m)) + sum_k beta_k Q_k(nu) ]
with A_m = FFT(fid_m(t) * lineshape_g(t)) for each group g (metabolites, macromolecules), c_m >= 0
(NNLS), complex baseline coefficients beta_k on a fixed real basis Q (B-spline or polynomial,
orthonormalised). Since |exp(i phi)| = 1, the residual equals exp(-i phi) Y - (A c + Q beta): the
baseline is projected out once, the concentrations are solved exactly at every step (NNLS on the
Gram matrix) and only the few nonlinear parameters theta = (phi0, phi1, per-group shift and
broadening) are iterated, by Levenberg-Marquardt on the Kaufman variable-projection Jacobian.

(Over the 400-line guide: setup, model evaluation, Jacobian, LM and CRLB share one hot path and its
cached intermediates; the lineshape kernel and the ratio priors are in kernel.py and priors.py.)
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
from mrs.fit.kernel import LineshapeKernel
from mrs.fit.models import get_model
from mrs.fit.priors import ratio_prior_rows
from mrs.fit.result import FitResult
from mrs.macromolecules import area_prior_rows
from mrs.names import canonical, is_macromolecule


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
    # Stop when a step lowers the cost by less than this x noise variance. Near the optimum the
    # steps of a noise-dominated fit shrink geometrically; stopping at 0.3 instead of 0.1 saves two
    # of about seven evaluations and moves Glu/tCr by 0.04 of its CRLB (rms, bench_fit_speed).
    ftol_chi2: float = 0.3
    xtol: float = 1e-6                    # or the scaled step does
    # Gaussian prior (mean, SD) on the metabolites' extra Lorentzian, in Hz, or None. Physics: the
    # Lorentzian part of an in-vivo line is its T2 (1/(pi T2) ~ 1.3-2.3 Hz at 3T); field
    # inhomogeneity adds a Gaussian-like part. Without it, broad Lorentzian wings trade against a
    # negative baseline and the macromolecules (a direction the data cannot resolve), inflating
    # every metabolite.
    lorentz_prior_hz: tuple[float, float] | None = (1.5, 1.5)
    single_precision: bool = True         # model FFTs in complex64 (2x faster; noise dominates)
    # The model spectra are only compared inside the window, so the basis is band-limited to the
    # window plus this margin on each side and evaluated on a time grid decimated to match (2048
    # points at 4 kHz become 512 at 3T: the FFTs and lineshape products shrink 4x). The margin keeps
    # what wraps around (tails of broadened lines beyond it) well under the noise. None: no decimation.
    model_margin_ppm: float | None = 1.5
    complete_mm: bool = True              # add broad MM lines the basis lacks (AUX_MM_LINES)
    # (ppm, FWHM ppm) lines to complete with; None: AUX_MM_LINES when the basis has MM entries of
    # its own, only the resolved ones (AUX_MM_RESOLVED_PPM) when it has none (complete_macromolecules)
    aux_mm_lines: tuple[tuple[float, float], ...] | None = None
    # Per-metabolite extra Lorentzian (LCModel-like): metabolites relax at different T2, so one
    # shared linewidth biases the singlets (NAA narrower, Cr broader). Gaussian prior, SD in Hz.
    # Extra Lorentzian broadening for sets of basis entries on top of their group's lineshape.
    # Singlet-dominated metabolites relax at different T2 (NAA ~226 ms, tCr ~137 ms, tCho ~207 ms
    # at 3T): one shared linewidth would bias NAA/tCr and tCho/tCr by 10-20 %, and their singlets
    # make the difference measurable. Each set (canonical names) gets one offset, Gaussian prior.
    t2_sets: tuple[tuple[str, ...], ...] = (("NAA", "NAAG"), ("Cr", "PCr"), ("GPC", "PCh"))
    # SD 1 Hz: 1/(pi T2) differs by < 1 Hz between singlets at 3T (T2 130-300 ms)
    t2_set_sd_hz: float = 1.0
    t2_set_bounds_hz: tuple[float, float] = (-5.0, 8.0)
    # Macromolecule components differ in width from any parametrised MM basis (their T2 range over
    # 20-40 ms, 8-16 Hz): one Lorentzian offset each, Gaussian prior SD 3 Hz. Lipids share theirs.
    mm_each: bool = True
    mm_each_sd_hz: float = 3.0
    mm_each_bounds_hz: tuple[float, float] = (-12.0, 20.0)
    # ... and a frequency offset each (parametrised MM positions are only known to ~0.05 ppm).
    # On by default: consensus MM positions carry ~0.02 ppm uncertainty (2.5 Hz at 3T), and a
    # misplaced MM line under Glu/NAA moves Glu/tCr by ~10 %.
    mm_shift_each: bool = True
    mm_shift_sd_hz: float = 2.5
    mm_shift_bounds_hz: tuple[float, float] = (-8.0, 8.0)
    mm_each_lipids: bool = False          # also give lipid entries their own offsets
    # Broad background dictionary: non-negative Gaussian lines of `background_fwhm_ppm` every
    # `background_spacing_ppm` from `background_start_ppm` to the window's top. Any broad positive
    # signal (macromolecules of whatever shape, lipid) is then representable, while the narrow
    # metabolite lines cannot be mimicked by it. 0 spacing turns it off.
    background_spacing_ppm: float = 0.0
    background_fwhm_ppm: float = 0.15
    background_start_ppm: float = 0.6
    background_lorentz_hz: float = 0.0      # Lorentzian part of each background line (short T2)
    # Soft priors tying each MM/lipid component's area to the 0.9 ppm MM (lipids: to 1.3 ppm) with
    # literature ratios (mrs.macromolecules.MM_AREA_PRIORS): augmented rows of the linear solve,
    # included in the Fisher information. `mm_prior_sd_scale` multiplies every prior SD.
    mm_priors: bool = True
    mm_prior_sd_scale: float = 1.0
    # Gaussian prior (mean, SD) on the macromolecules' extra Lorentzian, Hz (MM T2 20-40 ms), or None.
    mm_lorentz_prior_hz: tuple[float, float] | None = None
    # CRLB as the noise covariance of the penalised estimate, (F+P)^-1 F (F+P)^-1, rather than the
    # posterior (F+P)^-1: the SD a block-to-block change has (see mrs.fit.crlb.covariance).
    crlb_sandwich: bool = True
    # Free lineshape (mrs.fit.kernel): the model convolved with a kernel of taps every bin within
    # +- this many Hz (0: off), each with a Gaussian prior 0 +- kernel_sd (fraction of the area).
    # mrs.stream turns it off for sessions fitted with a session reference (docs/fitting.md).
    kernel_half_width_hz: float = 10.0
    kernel_sd: float = 0.05
    kernel_bound: float = 0.5
    # Soft constraints on NAAG/NAA, Gln/Glu, GABA/tCr (mrs.fit.priors); the scale multiplies the SDs.
    ratio_priors: bool = True
    ratio_prior_sd_scale: float = 1.0
    # Data-driven starts (shift and phase0 from the cross-correlation's best local maxima) tried
    # when there is no warm start or it fits badly; the lowest cost is refined.
    n_starts: int = 2


# Macromolecule resonances of brain at 3T (consensus of Cudalbu et al., NMR Biomed 2021): ppm and
# Gaussian FWHM in ppm. When no macromolecule entry of a basis peaks within 0.06 ppm of one of these, the
# fitter adds a Gaussian line there (named "MMaux<ppm*100>"): without it the broad signal ends up
# in the metabolites that overlap it (Glu/Gln at 3.75, tCho at 3.2, GSH at 2.55).
AUX_MM_LINES: tuple[tuple[float, float], ...] = (
    (0.91, 0.14), (1.21, 0.15), (1.43, 0.17), (1.67, 0.15), (2.04, 0.15), (2.26, 0.18), (2.56, 0.2),
    (3.00, 0.2), (3.21, 0.16), (3.79, 0.25), (3.98, 0.25),
)


# A basis without any MM entry gets only the lines up to this position (0.9-2.04 ppm), as LCModel
# completes such a basis (MM09, MM12, MM14, MM17, MM20); the broad signal above goes to the baseline.
# Above 2.1 ppm an MM line of free area and position is degenerate with Glu/Gln (2.26 and 3.79 ppm
# lie 0.05-0.1 ppm from Glu C4 and C2 and are as broad as a Glu multiplet at 8-12 Hz): on the
# independent truth set's broad-line spectra (bench/truthset, sim-broad-dev) the full table gave
# Glu/tCr MAPE 20.4 % with 4 gross failures, the resolved lines 13.8 % and 2 (docs/fitting.md).
AUX_MM_RESOLVED_PPM = 2.1


def complete_macromolecules(basis: Basis, lines: tuple[tuple[float, float], ...] | None = None) -> Basis:
    """The basis plus a Gaussian line at each `lines` position (default: AUX_MM_LINES, only those
    up to AUX_MM_RESOLVED_PPM when the basis has no MM/lipid entry at all) that no single-line
    MM/lipid entry covers (composite entries tie their lines together and cannot stand in for
    one). A basis with a whole MM spectrum (one entry with peaks over more than 2 ppm, e.g. a
    measured, metabolite-nulled MM) is returned unchanged: free lines would compete with it."""
    t = np.arange(basis.n_points) * basis.dwell_s
    freq = np.fft.fftfreq(basis.n_points, basis.dwell_s)
    ppm = basis.centre_ppm + freq / basis.cf_mhz
    # Peaks (local maxima above 30 % of the entry's maximum) of every MM/lipid entry.
    order = np.argsort(ppm)
    peaks = []
    for name, fid in zip(basis.names, basis.fids, strict=True):
        if is_macromolecule(name):
            spec = np.abs(np.fft.fft(fid))[order]
            top = spec.max()
            is_peak = (spec[1:-1] > spec[:-2]) & (spec[1:-1] >= spec[2:]) & (spec[1:-1] > 0.3 * top)
            pk = ppm[order][1:-1][is_peak]
            if pk.size > 1 and np.ptp(pk) > 2.0 and not name.strip().lower().startswith("lip"):
                return basis  # a whole MM spectrum (measured, 0.9-4 ppm): nothing to complete
            if is_peak.sum() == 1:  # a composite entry (several lines, fixed ratios) covers nothing
                peaks.append(pk)
    have = np.concatenate(peaks) if peaks else np.zeros(0)
    if lines is None:
        has_mm = any(is_macromolecule(n) for n in basis.names)
        lines = AUX_MM_LINES if has_mm else tuple(ln for ln in AUX_MM_LINES if ln[0] <= AUX_MM_RESOLVED_PPM)
    names, fids = list(basis.names), [basis.fids]
    for pos, width in lines:
        if have.size and np.min(np.abs(have - pos)) < 0.06:
            continue
        name = f"MMaux{int(round(pos * 100)):03d}"
        f_hz = (pos - basis.centre_ppm) * basis.cf_mhz
        w_hz = width * basis.cf_mhz
        fid = np.exp(2j * np.pi * f_hz * t - (np.pi * w_hz * t) ** 2 / (4 * np.log(2)))
        names.append(name)
        fids.append(fid[None, :])
    if len(names) == len(basis.names):
        return basis
    meta = dict(basis.meta)
    meta["aux_mm"] = names[len(basis.names):]
    return Basis(tuple(names), np.vstack(fids), basis.dwell_s, basis.cf_mhz, basis.centre_ppm, meta)


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


def _re_inner(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Re(a^H b) as two real products: half the work of the complex product."""
    return a.real.T @ b.real + a.imag.T @ b.imag


def _nnls_gram(gram: np.ndarray, rhs: np.ndarray, passive: np.ndarray | None = None) -> np.ndarray:
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
    try:
        low = np.linalg.cholesky(gram + ridge * np.eye(n))
    except np.linalg.LinAlgError:
        low = np.linalg.cholesky(gram + 1e-8 * float(np.trace(gram)) / n * np.eye(n))
    y = solve_triangular(low, rhs, lower=True, check_finite=False)
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
        if s.complete_mm:
            basis = complete_macromolecules(basis, s.aux_mm_lines)
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
        self.fids = fids[keep] / self.scale[:, None]  # full grid (QC, templates)
        self._setup_model_grid()
        is_mm = is_mm[keep]
        self.groups: list[tuple[str, np.ndarray, bool]] = []
        for g, mask, mm in group_defs:
            m = mask[keep]
            if m.any():
                self.groups.append((g, np.nonzero(m)[0], mm))

        self._setup_area_priors(fids[keep], is_mm)
        self._setup_ratio_priors()
        # Row selectors per group: a slice when the group is contiguous (no copies), else indices.
        self._group_rows = [slice(int(idx[0]), int(idx[-1]) + 1) if np.all(np.diff(idx) == 1) else idx
                            for _, idx, _ in self.groups]
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
        # Per-metabolite Lorentzian offsets (metabolite group only).
        # Extra-Lorentzian sets: (label, member indices, prior SD, bounds).
        # kind "l": extra Lorentzian exp(-pi d t); kind "s": extra shift exp(i 2 pi d t)
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
        self.each_slice = slice(len(names), len(names) + len(lsets))
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
        names += [f"{'dlorentz_hz' if ls[4] == 'l' else 'dshift_hz'}_{ls[0]}" for ls in lsets]
        lo_b += [ls[3][0] for ls in lsets]
        hi_b += [ls[3][1] for ls in lsets]
        k_bins = int(round(s.kernel_half_width_hz / self.df_hz))
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
        self.bg = self._background_columns(fids.shape[1])
        # Template for the coarse shift/phase search: sum of metabolite spectra (full, fftshifted).
        met = self.groups[0][1] if not self.groups[0][2] else np.arange(len(self.names))
        p_met = self.model.initial(False)
        tmpl = sfft.fft((self.fids[met] * self.scale[met, None]).sum(0) * self.model.lineshape(self.t, p_met))
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

    def _prior_rows(self, c_free: np.ndarray, noise_var: float) -> np.ndarray | None:
        mm = self._mm_prior_rows(c_free, noise_var)
        if not self.ratio_d.shape[0]:
            return mm
        # SD relative to the denominator's concentration from the unconstrained solve (at least
        # 2 % of the largest metabolite's, so a missing denominator does not make the row rigid)
        m = len(self.names)
        conc = c_free[:m] / self.scale
        ref = np.array([conc[list(den)].sum() for den in self.ratio_den])
        ref = np.maximum(ref, max(0.02 * float(conc.max()), 1e-300))
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
        is_met = np.ones(m, bool)
        is_met[[i for _, idx, mm in self.groups if mm for i in idx]] = False
        floor = 0.02 * float(areas[is_met].sum())
        ref_mm = float(areas[self.mm_anchor]) if self.mm_anchor is not None else 0.0
        ref = np.maximum(np.maximum(areas[self.prior_anchor], ref_mm), max(floor, 1e-300))
        w = np.sqrt(max(noise_var, 1e-300)) / (self.prior_sd_rel * ref)
        rows = self.prior_d * w[:, None]
        if self.bg.shape[1]:
            rows = np.hstack([rows, np.zeros((rows.shape[0], self.bg.shape[1]))])
        return rows

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
            np.multiply(src[rows], ls, out=fl[rows])
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
        gram = _re_inner(at, at)
        rhs = _re_inner(at, zt)
        if prior is None and make_prior is not None:
            prior = make_prior(_nnls_gram(gram, rhs))
        if prior is not None:
            gram = gram + prior.T @ prior
        c = _nnls_gram(gram, rhs, self._passive)
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
                proj = _re_inner(aa, jac)
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
        out = []
        for best in picks:
            x = np.zeros(len(self.param_names))
            x[0] = float(np.angle(corr[best]))
            for (_, _, mm), sl in zip(self.groups, self.slices, strict=True):
                x[sl] = self.model.with_shift(self.model.initial(mm), float(ks[best] * self.df_hz))
            out.append(np.clip(x, self.lo, self.hi))
        return out

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
        fits = []
        for xs, _, st in sorted(starts, key=lambda c: c[1])[:n_refine]:
            x, status, message, n_lm, state = self._levenberg_marquardt(xs, yw, prior_w, st, prior, free)
            nfev += n_lm
            fits.append((total(x, state), x, status, message, state))
        _, x, status, message, state = min(fits, key=lambda f: f[0])
        return self._finish(x, state, status, message, nfev, t0, prior_w, noise_var, free)

    def session_mask(self) -> np.ndarray:
        """Parameters that describe the session rather than the block: each T2 set's and each
        macromolecule's own width and shift offsets. Taken from the session's first blocks, they can
        be held for every block (`hold`). (Not the groups' shifts and broadenings: drift, shim and
        motion change those from block to block.)"""
        mask = np.zeros(len(self.param_names), bool)
        mask[self.each_slice] = True
        mask[self.kernel_slice] = True  # the lineshape's shape (the voxel's field distribution)
        return mask & self.free

    def _levenberg_marquardt(self, x: np.ndarray, yw: np.ndarray, prior_w: np.ndarray,
                             state: tuple, prior: np.ndarray | None = None, free: np.ndarray | None = None
                             ) -> tuple[np.ndarray, int, str, int, tuple]:
        """Box-constrained LM on the variable-projection residual plus prior rows w * (x - mu)."""
        s = self.settings
        free = self.free if free is None else free
        w2 = (prior_w ** 2)[free]

        def total_cost(r: np.ndarray, xx: np.ndarray) -> float:
            return float(np.vdot(r, r).real) + float(np.sum((prior_w * (xx - self.prior_mu)) ** 2))

        r, jac = state[0], self._jacobian(x, state, free)
        nfev = 0
        cost = total_cost(r, x)
        dof = max(2 * yw.size - len(self.names) - 2 * self.q.shape[1] - int(free.sum()), 1)
        lam = 1e-3
        for _ in range(s.max_iter):
            jf = jac[:, free]
            h = _re_inner(jf, jf) + np.diag(w2)
            g = _re_inner(jf, r) + w2 * (x - self.prior_mu)[free]
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
                state_new = self._state(x_new, yw, prior)  # Jacobian only once the step is accepted
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
            r, jac = r_new, self._jacobian(x, state_new, free)
        return x, 0, f"stopped after {s.max_iter} iterations", nfev, state

    def _finish(self, x: np.ndarray, state: tuple, status: int, message: str, nfev: int,
                t0: float, prior_w: np.ndarray, noise_var: float, free: np.ndarray | None = None) -> FitResult:
        r, c, a, z, fl = state[:5]
        beta = self.q.T @ (z - a @ c) if self.q.shape[1] else np.zeros(0, complex)
        base = self.q @ beta if self.q.shape[1] else np.zeros_like(z)
        m_met = len(self.names)
        broad = a[:, m_met:] @ c[m_met:]
        metab = a @ c
        pred = metab + base
        base = base + broad  # reported baseline: smooth baseline plus broad background
        resid = z - pred
        # Full-model Jacobian (d model / d parameter, in the de-phased frame) for the CRLB.
        cols = [(1j * pred)[:, None], (1j * self.dnu * pred)[:, None], self._group_derivatives(x, c, fl)]
        jac_nl = np.hstack(cols)
        if self.each_idx.size:
            jac_nl = np.column_stack([jac_nl, self._each_jac(fl, c)])
        if self.kernel is not None:
            jac_nl = np.column_stack([jac_nl, self._kernel_jac(state[8], c)])
        at_bound = (np.isclose(x, self.lo) | np.isclose(x, self.hi)) & np.isfinite(self.lo)
        nl_keep = (self.free if free is None else free) & ~at_bound
        jac_nl = jac_nl[:, nl_keep]
        # Background lines held at zero by the non-negativity are not free parameters here.
        lin_keep = np.ones(a.shape[1], bool)
        lin_keep[m_met:] = c[m_met:] > 0
        jac = np.column_stack([jac_nl, a[:, lin_keep], self.q.astype(complex), 1j * self.q])
        n_par = jac.shape[1]
        # The CRLB's noise: the smaller of two estimates that can each only be too large: the
        # residual's (it also holds the model's misfit: MM and baseline the model lacks, which made
        # the CRLBs 20-30 % larger than the scatter over noise draws on broad-line spectra,
        # bench_fit_external) and the outer bins' (`noise_var`: tails of large lines). The
        # residual's variance stays the result's `noise_var` (a fit-quality number).
        sigma_fit = _crlb.noise_variance(resid, n_par)
        sigma2 = min(sigma_fit, noise_var) if np.isfinite(noise_var) and noise_var > 0 else sigma_fit
        # Prior information (per-metabolite Lorentzians) adds to the Fisher information.
        n_nl = jac_nl.shape[1]
        prior_prec = np.zeros((n_par, n_par))
        prior_prec[np.arange(n_nl), np.arange(n_nl)] = (prior_w[nl_keep] ** 2) / max(noise_var, 1e-300)
        prior = state[7]
        prior_prec_data = prior_prec
        if prior is not None:
            # the MM area and ratio priors: precision D^T W^2 D on the amplitudes (same units as the rows)
            p = prior[:, lin_keep]
            k = p.shape[1]
            n_mm = self.prior_d.shape[0]  # MM rows first, then the ratio priors' rows
            prior_prec_data = prior_prec.copy()
            prior_prec_data[n_nl:n_nl + k, n_nl:n_nl + k] += (p[:n_mm].T @ p[:n_mm]) / max(noise_var, 1e-300)
            prior_prec[n_nl:n_nl + k, n_nl:n_nl + k] += (p.T @ p) / max(noise_var, 1e-300)
        cov_all = _crlb.covariance(jac, sigma2, prior_prec, sandwich=self.settings.crlb_sandwich)
        m = len(self.names)
        cov_c = cov_all[n_nl:n_nl + m, n_nl:n_nl + m] / np.outer(self.scale, self.scale)
        cov_d = cov_c
        if prior is not None and prior.shape[0] > self.prior_d.shape[0]:
            # without the ratio priors: what the data (and the lineshape/MM priors) alone determine
            cov_d = _crlb.covariance(jac, sigma2, prior_prec_data, sandwich=self.settings.crlb_sandwich)
            cov_d = cov_d[n_nl:n_nl + m, n_nl:n_nl + m] / np.outer(self.scale, self.scale)
        conc_raw = c[:m] / self.scale
        sd_raw = np.sqrt(np.clip(np.diag(cov_c), 0, None))
        # Re-embed excluded names so everything stays in basis order.
        full_names = self.all_names
        pos = {n: i for i, n in enumerate(self.names)}
        mfull = len(full_names)
        cov_full = np.zeros((mfull, mfull))
        sel = np.array([full_names.index(n) for n in self.names])
        cov_full[np.ix_(sel, sel)] = cov_c
        cov_data = np.zeros((mfull, mfull))
        cov_data[np.ix_(sel, sel)] = cov_d
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
            message=f"{message} ({(time.perf_counter() - t0) * 1e3:.1f} ms)", nfev=nfev,
            cost=float(np.vdot(resid, resid).real), noise_var=sigma_fit, ppm=self.ppm.copy(), data=z,
            prediction=pred, baseline=base, components=comps,
            phase0_rad=float(x[0]), phase1_rad_per_hz=float(x[1]), cov_data=cov_data)

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
