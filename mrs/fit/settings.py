"""Settings of the linear-combination fit (mrs.fit.LCFitter) and its setup error."""

from __future__ import annotations

from dataclasses import dataclass


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
    # (ppm, FWHM ppm) lines to complete with; None: AUX_MM_LINES when the basis has MM entries above
    # 2.1 ppm, else only those below (AUX_MM_RESOLVED_PPM; complete_macromolecules)
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
    # Broadening only: parametrised MM lines are Gaussians (no Lorentzian decay of their own), so a
    # negative offset made their FIDs grow first (-11 Hz on a 0.15 ppm line at 3T: FWHM 17.6 -> 11.7 Hz,
    # negative wings 9 % of its height), an "MM" no tissue makes that traded area with every
    # metabolite: near-equal minima 5 CRLBs apart in Glu/tCr, SD over noise draws 1.5-1.7x the CRLB
    # at NAA SNR 80 (docs/fitting.md, round 11).
    mm_each_bounds_hz: tuple[float, float] = (0.0, 20.0)
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
    # +- this many ppm (0: off), each with a Gaussian prior 0 +- kernel_sd (fraction of the area).
    # In ppm because the field distribution over a voxel scales with B0 (susceptibility): 0.08 ppm
    # is 9.9 Hz at 3T and 24 Hz at 7T, where a 10 Hz kernel left Glu/tCr MAPE 4 % higher.
    # mrs.stream turns it off for sessions fitted with a session reference (docs/fitting.md).
    kernel_half_width_ppm: float = 0.08
    kernel_sd: float = 0.05
    kernel_bound: float = 0.5
    # Soft constraints on NAAG/NAA, Gln/Glu, GABA/tCr (mrs.fit.priors); the scale multiplies the SDs.
    ratio_priors: bool = True
    ratio_prior_sd_scale: float = 1.0
    # Data-driven starts (shift and phase0 from the cross-correlation's best local maxima) tried
    # when there is no warm start or it fits badly; the lowest cost is refined.
    n_starts: int = 2
    # A cold fit also refines this many of the best (shift, phase0) pairs of a grid over the full
    # shift range and phase circle, by the fit's own cost (mrs.fit.LCFitter.grid_starts); 0: off.
    grid_starts: int = 1
