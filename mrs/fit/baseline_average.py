"""A spectrum fitted on its own, averaged over baseline stiffnesses (`mrsmon fit`; docs/fitting.md, round 12).

No one spline stiffness suits every spectrum from another tool: knots every 1 ppm let the baseline take
part of a broad metabolite at low SNR, knots every 2 ppm cannot follow a water tail or a lipid bump and
push that into the metabolites. Which one misleads differs from spectrum to spectrum and neither the
fit's chi-square nor an information criterion tells them apart (choosing by BIC was tried: better on the
sets it was chosen on, worse on new ones). The mean of the fits with knots every 1, 1.5 and 2 ppm read
Glu/tCr better than the 1 ppm fit alone on 15 of 19 truth sets (0.3-0.4 points worse on the other four),
Glx/tCr on all 19, including two drawn after it was fixed.

Averaged are the amplitudes, their covariance (the mean of the fits' covariances: the noise's share of
the SD, which the averaging does not shrink much, the fits being of the same data) and the spectra the
display draws (each fit's in the first fit's phase frame). The nonlinear parameters (warm starts, the
NAA linewidth) are the first (1 ppm) fit's.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mrs.fit.result import FitResult

KNOT_SPACINGS_PPM = (1.0, 1.5, 2.0)


def average(results: list[FitResult], dnu_hz: np.ndarray, knots_ppm: tuple[float, ...]) -> FitResult:
    """The mean of `results` (fits of the same data, the first one's frame and nonlinear parameters kept).
    `dnu_hz`: each window point's offset from the window centre, Hz (the first-order phase's axis).
    The first result when it failed; fits that failed are left out."""
    first = results[0]
    used = [(r, k) for r, k in zip(results, knots_ppm, strict=True) if r.success]
    if not first.success or len(used) < 2:
        return first
    n = len(used)

    def frame(r: FitResult) -> np.ndarray:
        # r's arrays are the data times exp(-i phi_r(nu)); times exp(i (phi_r - phi_first)) puts them in first's
        turn_rad = (r.phase0_rad - first.phase0_rad) + (r.phase1_rad_per_hz - first.phase1_rad_per_hz) * dnu_hz
        return np.exp(1j * turn_rad)

    rot = [frame(r) for r, _ in used]

    def mean_in_frame(array_of) -> np.ndarray:
        return sum(array_of(r) * f for (r, _), f in zip(used, rot, strict=True)) / n

    prediction = mean_in_frame(lambda r: r.prediction)
    baseline = mean_in_frame(lambda r: r.baseline)
    components = {name: mean_in_frame(lambda r, name=name: r.components[name])
                  for name in first.components if all(name in r.components for r, _ in used)}
    conc = {name: float(np.mean([r.conc[name] for r, _ in used])) for name in first.names}
    cov = np.mean([r.cov for r, _ in used], axis=0)
    cov_data = (None if any(r.cov_data is None for r, _ in used)
                else np.mean([r.cov_data for r, _ in used], axis=0))
    sd_all = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    sd, pct = {}, {}
    for i, name in enumerate(first.names):
        # an entry without signal in the window has no SD in any fit (NaN): it stays so
        sd[name] = float(sd_all[i]) if np.isfinite(first.sd[name]) else first.sd[name]
        pct[name] = 100.0 * sd[name] / conc[name] if conc[name] > 0 else float("inf")
    resid = first.data - prediction
    spacings = ", ".join(f"{k:g}" for _, k in used)
    return replace(first, conc=conc, sd=sd, crlb_pct=pct, cov=cov, cov_data=cov_data,
                   nfev=sum(r.nfev for r, _ in used), cost=float(np.vdot(resid, resid).real),
                   prediction=prediction, baseline=baseline, components=components,
                   message=f"{first.message}; mean of the fits with baseline knots every {spacings} ppm",
                   baseline_knots_ppm=tuple(k for _, k in used))
