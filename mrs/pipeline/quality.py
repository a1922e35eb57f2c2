"""Quality of the block: SNR, linewidths, frequency offset, drift and jumps, residual, the fit's
status, and the spectrum the display draws. (The alarms come after, from the rule book in mrs/qc.py,
evaluated by the runner on the finished result.)"""

from __future__ import annotations

import numpy as np

from mrs import qc as _qc
from mrs.names import canonical
from mrs.orientation import data_orientation
from mrs.pipeline.stage import BlockStage
from mrs.preproc.water import water_peak
from mrs.results import BlockSpectrum, _num

NAA_PPM = (1.9, 2.1)
# Mirrored only on strong evidence: a clean block scores ~140 noise SDs as stored and ~2 mirrored, a garbage
# block (2 transients under motion) 7 against 11; a block is called mirrored or not only when the winner
# reaches 20 and three times the other (else qc.mirrored is null).
MIRROR_MIN_SCORE, MIRROR_MIN_RATIO = 20.0, 3.0
WATER_PPM_RANGE = (4.0, 5.3)


def naa_snr(res, noise_sd: float) -> float:
    """Height of the fitted NAA + NAAG peak (the 2.01 ppm singlet) over the noise SD of the real
    spectrum. The fitted components, not prediction minus baseline: a broad MM line and the baseline
    can cancel each other (one spectrum: 10x the data's height each under NAA); of 160 truth-set
    files 36 read over 2x the true SNR (up to 133x). Their modulus: a file's spectrum keeps its own
    phase (the real part of a peak 97 degrees off read 0.42x its SNR)."""
    if not noise_sd > 0:
        return float("nan")
    parts = [v for n, v in res.components.items() if canonical(n) in ("NAA", "NAAG")]
    # a basis without NAA: whatever the fit puts at 2.0 ppm
    peak = np.sum(parts, axis=0) if parts else res.prediction - res.baseline
    sel = (res.ppm > NAA_PPM[0]) & (res.ppm < NAA_PPM[1])
    return float(np.abs(peak[sel]).max(initial=0.0)) / noise_sd


def _residual_water(items, avg: np.ndarray, g) -> float | None:
    """Median residual water of the block's transients (measured before any removal) over the block
    average's tallest metabolite peak: each transient's own metabolite peak is mostly noise, and the
    water is removed before the average is made. None for a cache made before this was measured."""
    heights = [i.water_height for i in items if i.water_height is not None]
    metabolites = water_peak(avg, g.dwell_s, g.cf_mhz, g.centre_ppm)[1]
    if not heights or not metabolites > 0:
        return None
    return _num(float(np.median(heights)) / metabolites, 3)


class Quality(BlockStage):
    name = "quality"

    def process(self, scaled, ctx):
        g, res = ctx.grid, scaled.fit
        avg = ctx.fitted[0]
        noise = _qc.noise_sd(avg, g.dwell_s, g.cf_mhz, g.centre_ppm)
        # by canonical name, as the SNR: a basis calling it "N-acetylaspartate" had no linewidth check
        naa_name = next((n for n in res.names if canonical(n) == "NAA"), None) or next(
            (n for n in res.names if canonical(n) == "tNAA"), None)
        snr = naa_snr(res, noise)
        if naa_name and naa_name in res.components:
            naa_fid = ctx.fitter.component_fid(naa_name, res.x)
            naa_fwhm = _qc.fwhm_hz(naa_fid, g.dwell_s, g.cf_mhz, NAA_PPM, g.centre_ppm)
        else:
            naa_fwhm = float("nan")
        water = ctx.water_fid()
        water_fwhm = (_qc.fwhm_hz(water, g.dwell_s, g.cf_mhz, WATER_PPM_RANGE, g.centre_ppm)
                      if water is not None else None)
        accepted = [i for i in ctx.items if i.rejected is None]
        f_acc = np.array([i.freq_hz for i in accepted])
        f_all = np.array([i.freq_hz for i in sorted(ctx.items, key=lambda i: i.t_s)])
        ft = np.array(ctx.freq_t)
        drift = _qc.drift_hz_per_min(ft[:, 0], ft[:, 1]) if len(ft) else 0.0
        resid_rel = float(np.std(res.residual.real) / noise) if noise > 0 else float("nan")
        residual_water = _residual_water(ctx.items, avg, g)
        # a scanner or bridge sending the conjugate convention: the fit is then not valid (mrs/alarms/mirrored.py)
        o = data_orientation(avg, g.dwell_s, g.cf_mhz, g.centre_ppm)
        best, other = max(o.score, o.score_mirrored), max(min(o.score, o.score_mirrored), 0.0)
        strong = best >= MIRROR_MIN_SCORE and best >= MIRROR_MIN_RATIO * other
        mirrored = (o.score_mirrored > o.score) if strong else None
        status, message = _qc.classify(dict(scaled.conc), scaled.crlb_pct, naa_fwhm, snr, res.success, res.message,
                                       residual_rel=resid_rel)
        if status == "ok" and not res.success:
            status = "failed"
        if not res.success:
            message = message or res.message
        return res, {
            "snr": _num(snr, 3), "naa_fwhm_hz": _num(naa_fwhm, 3),
            "water_fwhm_hz": _num(water_fwhm, 3) if water_fwhm is not None else None,
            "freq_offset_hz": _num(f_acc.mean(), 4), "drift_hz_per_min": _num(drift, 4),
            "max_jump_hz": _num(_qc.max_jump_hz(f_all), 4), "residual_rel": _num(resid_rel, 4),
            "mirrored": mirrored, "residual_water": residual_water,
            "fit_status": status, "message": message,
            "coils_excluded": tuple(int(k) for k in np.nonzero(ctx.coils_excluded)[0]),
            # tolist(): Python floats, ten times faster than a comprehension (on the latency path)
            "spectrum": BlockSpectrum(np.asarray(res.ppm, float).tolist(), res.data.real.tolist(),
                                      res.prediction.real.tolist(), res.baseline.real.tolist(),
                                      {n: c.real.tolist() for n, c in res.components.items()}),
        }
