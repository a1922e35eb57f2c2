"""Quality per block: the measures (SNR, linewidths, frequency, drift), the fit's plausibility, and
the one rule book of alarms, evaluated once per block in the pipeline (mrs/pipeline/quality.py).

The rules are the modules of `mrs/alarms/` (one file each, found at import); their thresholds come
from the session plan's `[alarms]` table (protocols/plan.py holds the defaults). Alarm thresholds
never change processing: outlier rejection has its own settings (`[outliers]`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mrs.basis import WATER_PPM
from mrs.results import Alarm, BlockResult

NOISE_REGIONS_PPM = ((-4.0, -1.0), (9.5, 12.5))


def noise_sd(fid: np.ndarray, dwell_s: float, cf_mhz: float, centre_ppm: float = WATER_PPM) -> float:
    """SD of the real spectrum in signal-free regions, from point-to-point differences (SD of the
    difference / sqrt 2): immune to smooth signal there, such as a residual-water dispersion tail."""
    x = np.asarray(fid, complex)
    n = x.size
    spec = np.fft.fftshift(np.fft.fft(x)).real
    ppm = centre_ppm + np.fft.fftshift(np.fft.fftfreq(n, dwell_s)) / cf_mhz
    parts = []
    for lo, hi in NOISE_REGIONS_PPM:
        sel = (ppm >= lo) & (ppm <= hi)
        if sel.sum() >= 16:
            parts.append(np.diff(spec[sel]))
    if not parts:  # narrow bandwidth: use the outer 10% on both sides
        k = max(8, n // 10)
        parts = [np.diff(spec[:k]), np.diff(spec[-k:])]
    d = np.concatenate(parts)
    return float(np.sqrt(np.mean((d - d.mean()) ** 2) / 2.0))


def fwhm_hz(fid: np.ndarray, dwell_s: float, cf_mhz: float, ppm_range: tuple[float, float],
            centre_ppm: float = WATER_PPM, zero_fill: int = 8) -> float:
    """FWHM (Hz) of the tallest peak of the real spectrum inside `ppm_range`, phased at its peak."""
    x = np.asarray(fid, complex)
    n = x.size * zero_fill
    spec = np.fft.fftshift(np.fft.fft(x, n))
    freq = np.fft.fftshift(np.fft.fftfreq(n, dwell_s))
    ppm = centre_ppm + freq / cf_mhz
    sel = np.nonzero((ppm >= min(ppm_range)) & (ppm <= max(ppm_range)))[0]
    if sel.size < 3:
        return float("nan")
    i_pk = sel[np.argmax(np.abs(spec[sel]))]
    y = (spec * np.exp(-1j * np.angle(spec[i_pk]))).real
    half = y[i_pk] / 2
    if not half > 0:
        return float("nan")
    lo = i_pk
    while lo > 0 and y[lo] > half:
        lo -= 1
    hi = i_pk
    while hi < n - 1 and y[hi] > half:
        hi += 1
    if lo == 0 or hi == n - 1:
        return float("nan")
    # linear interpolation of both crossings
    f_lo = freq[lo] + (half - y[lo]) / (y[lo + 1] - y[lo]) * (freq[lo + 1] - freq[lo])
    f_hi = freq[hi - 1] + (half - y[hi - 1]) / (y[hi] - y[hi - 1]) * (freq[hi] - freq[hi - 1])
    return float(f_hi - f_lo)


def drift_hz_per_min(t_s: np.ndarray, freq_hz: np.ndarray, window_s: float = 300.0) -> float:
    """Slope of the frequency over the last `window_s` (least squares), Hz/min."""
    t = np.asarray(t_s, float)
    f = np.asarray(freq_hz, float)
    ok = np.isfinite(t) & np.isfinite(f)
    t, f = t[ok], f[ok]
    if t.size < 3:
        return 0.0
    sel = t >= t.max() - window_s
    t, f = t[sel], f[sel]
    if t.size < 3 or np.ptp(t) <= 0:
        return 0.0
    return float(np.polyfit(t, f, 1)[0] * 60.0)


def max_jump_hz(freq_hz: np.ndarray) -> float:
    f = np.asarray(freq_hz, float)
    return float(np.abs(np.diff(f)).max()) if f.size > 1 else 0.0


def classify(conc: dict[str, float], crlb_pct: dict[str, float], naa_fwhm_hz: float, snr: float,
             success: bool, message: str, max_fwhm_hz: float = 25.0, max_glu_crlb_pct: float = 100.0,
             min_snr: float = 3.0, residual_rel: float = float("nan"), max_residual_rel: float = 10.0,
             max_residual_of_peak: float = 0.05) -> tuple[str, str]:
    """fit_status "ok" | "implausible" | "failed" and a one-line reason.

    A residual above `max_residual_rel` noise SDs *and* `max_residual_of_peak` of the NAA height is a
    spectrum the model does not describe (the fitting challenge's lipid-dominated dataset 28: 41 SDs,
    6 %; 240 truth-set spectra at most 3.9 SDs, 2.9 % above SNR 50). Both, so a phantom at SNR 1000
    with a 2 % misfit stays ok."""
    if not success:
        return "failed", message or "fit did not converge"
    if not all(np.isfinite(v) for v in conc.values()):
        return "failed", "non-finite concentrations"
    problems = []
    naa = conc.get("tNAA", conc.get("NAA"))
    if naa is None or not naa > 0:
        problems.append("NAA not found")
    if not np.isfinite(snr) or snr < min_snr:
        problems.append(f"SNR {snr:.1f} below {min_snr:g}")
    if np.isfinite(naa_fwhm_hz) and naa_fwhm_hz > max_fwhm_hz:
        problems.append(f"NAA linewidth {naa_fwhm_hz:.1f} Hz above {max_fwhm_hz:g} Hz")
    glu = crlb_pct.get("Glu")
    if glu is not None and not (np.isfinite(glu) and glu <= max_glu_crlb_pct):
        problems.append(f"CRLB of Glu above {max_glu_crlb_pct:g}%")
    if (np.isfinite(residual_rel) and residual_rel > max_residual_rel and np.isfinite(snr) and snr > 0
            and residual_rel > max_residual_of_peak * snr):  # SNR 0 (no NAA) is implausible above
        problems.append(f"residual {residual_rel:.0f}x the noise, {100 * residual_rel / snr:.0f} % of the NAA height: "
                        "the model does not describe this spectrum")
    if problems:
        return "implausible", "; ".join(problems)
    return "ok", ""


# ------------------------------------------------------------------------------ the alarm rule book
@dataclass(frozen=True)
class AlarmRule:
    """One alarm: its name, the measure it reads, the plan's threshold key (`[alarms]`; None: needs
    none), its severity, and `check(result, limit, history)`, which returns the one plain sentence
    the technician reads when the alarm is raised (None when not). `history` holds the session's
    earlier block results, oldest first."""

    name: str
    measure: str
    threshold: str | None
    severity: str
    check: Callable[[BlockResult, float | None, Sequence[BlockResult]], str | None]


SEVERITIES = ("red", "amber")


def _load_rules() -> tuple[AlarmRule, ...]:
    """Every module of `mrs/alarms/` holds one `RULE`: adding an alarm is adding a file."""
    import mrs.alarms

    rules = []
    for info in sorted(pkgutil.iter_modules(mrs.alarms.__path__), key=lambda i: i.name):
        rule = getattr(importlib.import_module(f"mrs.alarms.{info.name}"), "RULE", None)
        if not isinstance(rule, AlarmRule):
            raise TypeError(f"mrs/alarms/{info.name}.py must define RULE = AlarmRule(...)")
        if rule.severity not in SEVERITIES:
            raise ValueError(f"alarm {rule.name}: severity {rule.severity!r} is not one of {SEVERITIES}")
        rules.append(rule)
    return tuple(sorted(rules, key=lambda r: (SEVERITIES.index(r.severity), r.name)))


def evaluate_alarms(result: BlockResult, thresholds: Mapping[str, float] | None,
                    history: Sequence[BlockResult] = (), rules: Sequence[AlarmRule] | None = None
                    ) -> tuple[Alarm, ...]:
    """The alarms the rule book raises for one block (red first). A rule whose threshold the plan
    does not give is not evaluated: thresholds come from the plan only (protocols/plan.py)."""
    limits = dict(thresholds or {})
    raised = []
    for rule in RULES if rules is None else rules:
        if rule.threshold is not None and limits.get(rule.threshold) is None:
            continue
        limit = None if rule.threshold is None else float(limits[rule.threshold])
        reason = rule.check(result, limit, history)
        if reason:
            raised.append(Alarm(rule.name, rule.severity, reason))
    return tuple(raised)


def beyond(value: float, limit: float, unit: str = "", sign: bool = False) -> str:
    """`value` with just enough decimals that it visibly differs from `limit` (for alarm sentences)."""
    for decimals in (1, 2, 3):
        text = f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"
        if abs(float(text)) != abs(round(limit, decimals)):
            break
    return text + unit


RULES: tuple[AlarmRule, ...] = _load_rules()  # last: the rule modules import this one
