"""The scanner's forward model: a session plan and a seed in, coil-resolved transients out.

Per transient the voxel signal is

    amp * exp((i 2 pi f - pi dlw) t + i phi) * [M_rest(t) + g(t) M_Glu(t) + w M_water(t)]

where M_rest and M_Glu are precomputed once per session (basis x concentrations x T2 weighting x
Lorentzian x skewed B0 field distribution x eddy-current phase, sampled after a small acquisition
delay) plus the simulator's own macromolecule background, f and phi follow drift and motion, dlw
is motion broadening minus BOLD narrowing, g is the glutamate time course and w the slowly varying
residual water. Coils multiply by complex sensitivities and add correlated Gaussian noise. Motion
adds lipid from outside the voxel (its own sensitivities). Everything is drawn from one seed.
See docs/simulator.md for every `[simulation]` key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from mrs.basis import WATER_PPM, Basis, BasisError, ppm_axis
from mrs.names import canonical
from protocols.plan import SessionPlan
from simulator import drift, lineshape, timecourse
from simulator import truth as tables
from simulator.coils import CoilArray, make_coil_array

SCAN_KINDS = ("noise", "dummy", "water_ref", "metabolite")

# Every key the simulator reads from a plan's [simulation] table, with its default.
DEFAULTS: dict[str, Any] = {
    "scenario": "custom", "condition": None, "sex": None,
    "snr_naa_single": 25.0, "linewidth_hz": 6.0, "lorentzian_hz": None, "lineshape_skew": 1.0,
    "drift_hz_per_min": 0.2, "drift_random_walk_hz": 0.05, "phase_random_walk_deg": 0.3,
    "freq_offset_hz": None,
    "response_pct": 0.0, "response_onset_min": 10.0, "response_rise_min": 10.0,
    "response_decay_min": 20.0, "naltrexone_factor": timecourse.DEFAULT_NALTREXONE_FACTOR,
    "naltrexone_factor_male": None, "naltrexone_factor_female": None,
    "bold_narrowing_hz": None,
    "motion_events": 0, "motion_severity": 1.0,
    "concentration_cv": 0.05, "concentrations": None, "mm_scale": 1.0,
    "residual_water_ratio": 3.0, "residual_water_log_sd": 0.5, "residual_water_tau_min": 4.0,
    "residual_water_bursts_per_h": 1.0,
    "eddy_phase_rad": None, "eddy_tau_ms": None, "acq_delay_ms": None,
    "coil_failures": [], "noise_correlation": [0.1, 0.3], "sensitivity_ratio": 10.0,
    "dummy_excess": 0.8, "infusion_volume_ml": 50.0,
}


class SimulationError(ValueError):
    """A plan the simulator cannot play."""


@dataclass(frozen=True)
class Scan:
    kind: str        # "noise" | "dummy" | "water_ref" | "metabolite"
    index: int       # 0-based over all scans of the session
    t_s: float       # acquisition time from session start
    data: np.ndarray  # complex64 (coils, points), C-contiguous


def default_basis(plan: SessionPlan) -> Basis:
    """The density-matrix basis (ideal pulses, no line broadening) for the plan's acquisition, on
    its exact time grid. Cached per acquisition (the line lists are also cached on disk)."""
    a = plan.acquisition
    return _default_basis(a.spectrometer_frequency_mhz, a.sequence, a.echo_time_ms, a.te1_ms,
                          a.mixing_time_ms, a.dwell_time_s, a.points)


@lru_cache(maxsize=8)
def _default_basis(cf_mhz: float, sequence: str, te_ms: float, te1_ms: float | None, tm_ms: float | None,
                   dwell_s: float, points: int) -> Basis:
    from mrs.basis_sim import normalise_sequence, simulate_basis

    return simulate_basis(cf_mhz, normalise_sequence(sequence), te_ms * 1e-3, dwell_s, points,
                          te1_s=None if te1_ms is None else te1_ms * 1e-3,
                          tm_s=None if tm_ms is None else tm_ms * 1e-3, linewidth_hz=0.0)


class SessionSimulator:
    """A seeded, lazily generated session: scans, scanner events and ground truth."""

    def __init__(self, plan: SessionPlan, seed: int, condition: str | None = None,
                 coils: int | None = None, basis: Basis | None = None) -> None:
        unknown = sorted(set(plan.simulation) - set(DEFAULTS))
        if unknown:
            raise SimulationError(f"plan {plan.name}: unknown [simulation] key(s) {', '.join(unknown)}; "
                                  "see docs/simulator.md")
        self.plan = plan
        self.seed = int(seed)
        self.cfg: dict[str, Any] = {**DEFAULTS, **plan.simulation}
        self._condition_given = condition is not None or plan.simulation.get("condition") is not None
        try:
            self.condition = timecourse.resolve_condition(plan, condition)
        except ValueError as exc:
            raise SimulationError(str(exc)) from None
        self.sex = self.cfg["sex"]
        acq = plan.acquisition
        self.n_coils = int(coils if coils is not None else acq.coils)
        if not 1 <= self.n_coils <= 256:
            raise SimulationError(f"coils {self.n_coils} outside 1..256")
        self.points = acq.points
        self.dwell_s = acq.dwell_time_s
        self.cf_mhz = acq.spectrometer_frequency_mhz
        self.te_s = acq.echo_time_ms * 1e-3
        self.tr_s = acq.repetition_time_s
        self.t = np.arange(self.points) * self.dwell_s
        streams = np.random.SeedSequence(self.seed).spawn(8)
        self._rng = {name: np.random.default_rng(s) for name, s in zip(
            ("session", "coils", "drift", "motion", "water", "events", "lipid"), streams[:7], strict=True)}
        self._noise_seed = streams[7]
        try:
            self.basis = basis if basis is not None else default_basis(plan)
        except (BasisError, ValueError) as exc:
            raise SimulationError(f"plan {plan.name}: cannot simulate its basis: {exc}") from None
        self._build_session()
        self._build_coils()
        self._build_schedule()
        self._events = self._build_events()

    # ----------------------------------------------------------------- session-level physics
    def _build_session(self) -> None:
        rng = self._rng["session"]
        cfg = self.cfg
        base = tables.CONCENTRATIONS_MM
        if cfg["concentrations"]:
            base = {**base, **{k: float(v) for k, v in dict(cfg["concentrations"]).items()}}
        conc = tables.sample_concentrations(rng, float(cfg["concentration_cv"]), base)
        # Basis rows by canonical name ("Ins" -> "mI"); rows the tables do not know (MM, ...) are unused.
        rows: dict[str, int] = {}
        for i, n in enumerate(self.basis.names):
            rows.setdefault(canonical(n), i)
        names = [n for n in rows if n in conc]
        if "Glu" not in names or "NAA" not in names:
            raise SimulationError(f"the basis must hold at least NAA and Glu (it holds {', '.join(self.basis.names)})")
        self.concentrations = {n: conc[n] for n in names}
        # Signal per mM relative to TE = 0: what a fit without T2 correction measures.
        self.te_weights = {n: float(np.exp(-self.te_s / (tables.t2_ms(n) * 1e-3))) for n in names}
        fids = self.basis.resampled(self.dwell_s, self.points, self.cf_mhz, WATER_PPM)
        t = self.t

        self.linewidth_hz = float(cfg["linewidth_hz"])
        lorentz = cfg["lorentzian_hz"]
        self.lorentzian_hz = float(lorentz) if lorentz is not None else 0.25 * self.linewidth_hz
        naa_l = 1.0 / (np.pi * tables.t2_ms("NAA") * 1e-3)
        dist0 = lineshape.sample_field_distribution(rng, float(cfg["lineshape_skew"]))
        try:
            self.field_distribution = lineshape.calibrate_field_distribution(
                dist0, naa_l + self.lorentzian_hz, self.linewidth_hz)
        except ValueError as exc:
            raise SimulationError(f"plan {self.plan.name}: {exc}") from None
        b0 = self.field_distribution.envelope(t) * np.exp(-np.pi * self.lorentzian_hz * t)
        self._fwhm_grid = np.arange(-2.0, 40.01, 1.0)
        self._fwhm_vals = lineshape.fwhm_table(self.field_distribution, naa_l + self.lorentzian_hz,
                                               self._fwhm_grid)

        self.eddy_phase_rad = _pick(cfg["eddy_phase_rad"], lambda: rng.uniform(0.2, 0.8) * rng.choice([-1, 1]))
        self.eddy_tau_s = 1e-3 * _pick(cfg["eddy_tau_ms"], lambda: rng.uniform(5.0, 30.0))
        self.acq_delay_s = 1e-3 * _pick(cfg["acq_delay_ms"], lambda: rng.uniform(0.05, 0.25))
        eddy = lineshape.eddy_current_factor(t, self.eddy_phase_rad, self.eddy_tau_s)

        def weighted(name: str) -> np.ndarray:
            t2 = tables.t2_ms(name) * 1e-3
            return self.concentrations[name] * np.exp(-self.te_s / t2) * fids[rows[name]] \
                * np.exp(-t / t2)

        mets_rest = sum(weighted(n) for n in names if n != "Glu")
        met_glu = weighted("Glu")
        self.macromolecules = tables.jitter_components(rng, tables.MACROMOLECULES, 0.015, 0.15, 0.15)
        mm = float(cfg["mm_scale"]) * tables.broad_fid(self.macromolecules, t, self.cf_mhz, WATER_PPM, self.te_s)
        # Height of NAA in the clean (no eddy, no delay) metabolite + MM spectrum sets the signal scale.
        clean = b0 * (mets_rest + met_glu + mm)
        ppm = ppm_axis(self.points, self.dwell_s, self.cf_mhz)
        naa_band = (ppm > 1.95) & (ppm < 2.07)
        spec = np.fft.fftshift(np.fft.fft(clean)).real
        h_naa = float(spec[naa_band].max())

        water_t2 = tables.WATER_T2_MS * 1e-3
        water_line = b0 * np.exp(-t / water_t2)
        water_ref = tables.WATER_PROTONS_MM * np.exp(-self.te_s / water_t2) * water_line
        # Residual water after suppression: spins off-resonant across the voxel escape the
        # suppression band more, so the residue is broader in its field distribution (a Gaussian
        # factor; its Lorentzian wings stay those of water's T2). Scaled to unit NAA height.
        res = water_line * np.exp(-2.0 * (np.pi * 6.0 * t) ** 2)
        res *= h_naa / np.fft.fft(res).real.max()
        lip = tables.jitter_components(self._rng["lipid"], tables.LIPIDS, 0.01, 0.1, 0.1)
        lip_fid = tables.broad_fid(lip, t, self.cf_mhz, WATER_PPM, self.te_s)
        lip_fid *= h_naa / np.fft.fft(lip_fid).real.max()

        # Residual and reference water already carry the B0 lineshape.
        comps = np.array([(mets_rest + mm) * b0, met_glu * b0, res, water_ref]) * eddy
        comps = lineshape.delay_acquisition(comps, self.dwell_s, self.acq_delay_s)
        lip_d = lineshape.delay_acquisition(lip_fid * eddy, self.dwell_s, self.acq_delay_s)
        self._h_naa_unit = h_naa
        # The phase that eddy currents, the delay and the lineshape add at the NAA peak on top of
        # each transient's phase_deg: what a zero-order phase measured at NAA sees.
        spec_d = np.fft.fftshift(np.fft.fft(comps[0] + comps[1]))
        k = np.flatnonzero(naa_band)[np.argmax(np.abs(spec_d[naa_band]))]
        self.naa_phase_offset_deg = float(np.rad2deg(np.angle(spec_d[k])))
        self._comp_rest, self._comp_glu, self._comp_water_res, self._comp_water_ref = comps
        self._comp_lipid = lip_d

    def _build_coils(self) -> None:
        rng = self._rng["coils"]
        lo, hi = (float(x) for x in self.cfg["noise_correlation"])
        arr = make_coil_array(self.n_coils, rng, (lo, hi), float(self.cfg["sensitivity_ratio"]))
        # Lipid comes from outside the voxel: other sensitivities.
        self.lipid_sensitivities = make_coil_array(self.n_coils, rng, (lo, hi),
                                                   float(self.cfg["sensitivity_ratio"])).sensitivities
        # Signal gain: NAA height / noise SD (real part of the spectrum) of the optimal combination.
        snr = float(self.cfg["snr_naa_single"])
        if snr <= 0:
            raise SimulationError("snr_naa_single must be positive")
        noise_sd_spec = np.sqrt(self.points * arr.combined_noise_var() / 2.0)
        self.gain = snr * noise_sd_spec / self._h_naa_unit
        self.coil_arrays: list[CoilArray] = [arr]
        self.coil_failures: list[dict[str, Any]] = []
        for f in sorted((dict(x) for x in self.cfg["coil_failures"]), key=lambda x: float(x["at_min"])):
            try:
                arr = arr.failed(int(f["coil"]), str(f.get("mode", "dead")), float(f.get("noise_factor", 20.0)))
            except (KeyError, ValueError) as exc:
                raise SimulationError(f"plan {self.plan.name}: coil_failures entry {f}: {exc}") from None
            self.coil_arrays.append(arr)
            self.coil_failures.append({"coil": int(f["coil"]), "at_min": float(f["at_min"]),
                                       "mode": str(f.get("mode", "dead")),
                                       "noise_factor": float(f.get("noise_factor", 20.0))})
        self._coil_ops = [(a.sensitivities, a.noise_factor()) for a in self.coil_arrays]

    # ----------------------------------------------------------------------- the scan table
    def _build_schedule(self) -> None:
        acq = self.plan.acquisition
        cfg = self.cfg
        kinds = (["noise"] * acq.noise_scans + ["dummy"] * acq.dummy_scans
                 + ["water_ref"] * acq.water_reference_transients + ["metabolite"] * self.plan.n_transients)
        n = len(kinds)
        self.kinds = kinds
        self.t_s = np.arange(n) * self.tr_s
        t_min = self.t_s / 60.0
        rng = self._rng["drift"]
        f0 = _pick(cfg["freq_offset_hz"], lambda: rng.uniform(-3.0, 3.0))
        freq = drift.frequency_drift_hz(t_min, float(cfg["drift_hz_per_min"]),
                                        float(cfg["drift_random_walk_hz"]), f0, rng)
        phase = drift.phase_drift_deg(n, float(cfg["phase_random_walk_deg"]), rng.uniform(-180, 180), rng)
        extra_lw = np.zeros(n)
        amp = np.ones(n)
        lipid = np.zeros(n, complex)
        lipid_freq = np.zeros(n)
        motion = np.zeros(n, bool)

        shape = timecourse.response_shape(t_min, self.plan)
        self.glu_scale = np.asarray(timecourse.glu_scale(t_min, self.plan, self.condition, self.sex), float)
        bold = cfg["bold_narrowing_hz"]
        self.bold_narrowing_hz = float(bold) if bold is not None else 0.2 * acq.field_strength_t / 3.0
        if float(cfg["response_pct"]) == 0.0:
            shape = np.zeros(n)
        extra_lw -= self.bold_narrowing_hz * shape

        # Dummy scans: magnetisation not yet in steady state, water suppression not settled.
        dummy_idx = [i for i, k in enumerate(kinds) if k == "dummy"]
        for j, i in enumerate(dummy_idx):
            amp[i] = 1.0 + float(cfg["dummy_excess"]) * np.exp(-j)

        rw = self._rng["water"]
        ratio = float(cfg["residual_water_ratio"])
        log_ratio = drift.ornstein_uhlenbeck(t_min, np.log(max(ratio, 1e-300)),
                                             float(cfg["residual_water_log_sd"]),
                                             float(cfg["residual_water_tau_min"]), rw)
        water_phase = drift.ornstein_uhlenbeck(t_min, rw.uniform(-180, 180), 30.0,
                                               float(cfg["residual_water_tau_min"]), rw)
        water_amp = np.exp(log_ratio) if ratio > 0 else np.zeros(n)
        self.residual_water_bursts: list[dict[str, float]] = []
        # "Sometimes large": Poisson-many episodes of poor suppression (about one an hour).
        n_bursts = rw.poisson(float(cfg["residual_water_bursts_per_h"]) * t_min[-1] / 60.0) if n else 0
        for _ in range(n_bursts):
            start = rw.uniform(0.0, max(t_min[-1], 1e-6)) if n else 0.0
            dur, factor = rw.uniform(0.5, 2.0), rw.uniform(5.0, 20.0)
            water_amp[(t_min >= start) & (t_min < start + dur)] *= factor
            self.residual_water_bursts.append({"start_min": float(start), "duration_min": float(dur),
                                               "factor": float(factor)})
        for j, i in enumerate(dummy_idx):
            water_amp[i] *= 1.0 + 4.0 * np.exp(-j)
        water = water_amp * np.exp(1j * np.deg2rad(water_phase))

        self.motion_events = self._motion(kinds, freq, phase, extra_lw, amp, lipid, lipid_freq, motion)
        self.freq_hz, self.phase_deg, self.extra_lw_hz, self.amp = freq, phase, extra_lw, amp
        self.lipid_amp, self.lipid_freq_hz, self.motion_flag, self.water = lipid, lipid_freq, motion, water
        self.epoch = np.zeros(n, int)
        for k, f in enumerate(self.coil_failures, start=1):
            self.epoch[self.t_s >= f["at_min"] * 60.0] = k

    def _motion(self, kinds: list[str], freq: np.ndarray, phase: np.ndarray, extra_lw: np.ndarray,
                amp: np.ndarray, lipid: np.ndarray, lipid_freq: np.ndarray,
                motion: np.ndarray) -> list[dict[str, Any]]:
        rng = self._rng["motion"]
        sev = float(self.cfg["motion_severity"])
        met = np.array([i for i, k in enumerate(kinds) if k == "metabolite"])
        count = int(self.cfg["motion_events"])
        if count <= 0 or met.size < 10:
            return []
        lo, hi = int(0.05 * met.size), int(0.95 * met.size)
        starts = np.sort(rng.choice(np.arange(lo, hi), size=min(count, hi - lo), replace=False))
        events = []
        for s in starts:
            length = int(rng.integers(1, 6))
            idx = met[s:s + length]
            jump = sev * rng.uniform(3.0, 15.0) * rng.choice([-1, 1])
            broad = sev * rng.uniform(2.0, 10.0)
            loss = float(np.clip(1.0 - sev * rng.uniform(0.1, 0.6), 0.05, 1.0))
            lip_ratio = sev * rng.uniform(3.0, 30.0) if rng.uniform() < 0.7 else 0.0
            step_f = sev * rng.normal(0.0, 1.5)
            step_p = sev * rng.uniform(-40.0, 40.0)
            step_lw = sev * rng.uniform(0.0, 1.0)
            freq[idx] += jump * rng.uniform(0.5, 1.0, idx.size)
            phase[idx] += rng.uniform(-180.0, 180.0, idx.size)
            extra_lw[idx] += broad
            amp[idx] *= loss
            if lip_ratio > 0:
                lipid[idx] = lip_ratio * rng.uniform(0.3, 1.0, idx.size) \
                    * np.exp(2j * np.pi * rng.uniform(size=idx.size))
                lipid_freq[idx] = rng.normal(0.0, 10.0, idx.size)
            motion[idx] = True
            after = met[s + length:]
            freq[after] += step_f
            phase[after] += step_p
            extra_lw[after] += step_lw
            events.append({"t_s": float(self.tr_s * met[s]), "transient": int(s), "scan": int(met[s]),
                           "n_transients": int(idx.size), "freq_jump_hz": float(jump),
                           "broadening_hz": float(broad), "signal_fraction": loss,
                           "lipid_height_ratio": float(lip_ratio), "persistent_freq_hz": float(step_f),
                           "persistent_phase_deg": float(step_p), "persistent_broadening_hz": float(step_lw)})
        return events

    # ------------------------------------------------------------------------ public API
    def header_fields(self) -> dict[str, Any]:
        """Acquisition fields for SESSION_START (never the condition)."""
        a = self.plan.acquisition
        out: dict[str, Any] = {
            "spectrometer_frequency_mhz": a.spectrometer_frequency_mhz, "nucleus": a.nucleus,
            "dwell_time_s": a.dwell_time_s, "points": a.points, "coils": self.n_coils,
            "echo_time_s": a.echo_time_ms * 1e-3, "repetition_time_s": a.repetition_time_s,
            "sequence": a.sequence, "voxel_mm": list(a.voxel_mm), "field_strength_t": a.field_strength_t,
        }
        if a.te1_ms is not None:
            out["te1_s"] = a.te1_ms * 1e-3
        if a.mixing_time_ms is not None:
            out["mixing_time_s"] = a.mixing_time_ms * 1e-3
        return out

    @property
    def n_scans(self) -> int:
        return len(self.kinds)

    def voxel_signal(self, index: int) -> np.ndarray:
        """Noise-free voxel signal of scan `index` (complex128, points): what an optimal coil
        combination gives on average (lipid from outside the voxel excluded)."""
        kind = self.kinds[index]
        if kind == "noise":
            return np.zeros(self.points, complex)
        a = (2j * np.pi * self.freq_hz[index] - np.pi * self.extra_lw_hz[index]) * self.t \
            + 1j * np.deg2rad(self.phase_deg[index])
        base = self._comp_rest + self.glu_scale[index] * self._comp_glu
        if kind == "water_ref":
            base = base + self._comp_water_ref
        else:
            base = base + self.water[index] * self._comp_water_res
        return (self.gain * self.amp[index]) * np.exp(a) * base

    def lipid_signal(self, index: int) -> np.ndarray | None:
        if self.lipid_amp[index] == 0:
            return None
        return (self.gain * self.lipid_amp[index]) * self._comp_lipid \
            * np.exp(2j * np.pi * (self.freq_hz[index] + self.lipid_freq_hz[index]) * self.t)

    def coil_array_at(self, index: int) -> CoilArray:
        return self.coil_arrays[int(self.epoch[index])]

    def scans(self) -> Iterator[Scan]:
        """Every scan in acquisition order, generated lazily; identical for the same seed."""
        rng = np.random.Generator(np.random.PCG64(self._noise_seed))
        c, p = self.n_coils, self.points
        # One matrix product per scan: [L | s_voxel | s_lipid] @ [z; voxel signal; lipid signal].
        ops = [np.ascontiguousarray(np.hstack([chol, sens[:, None], self.lipid_sensitivities[:, None]])
                                    .astype(np.complex64)) for sens, chol in self._coil_ops]
        for i, kind in enumerate(self.kinds):
            z = np.empty((c + 2, p), np.complex64)
            rng.standard_normal(dtype=np.float32, out=z[:c].view(np.float32))
            if kind == "noise":
                z[c:] = 0.0
            else:
                z[c] = self.voxel_signal(i)
                lip = self.lipid_signal(i)
                z[c + 1] = 0.0 if lip is None else lip
            yield Scan(kind, i, float(self.t_s[i]), ops[self.epoch[i]] @ z)

    def events(self) -> list[tuple[float, str, dict, str]]:
        """Scanner-side events (t_s, kind, value, note), in time order. Motion is never announced."""
        return list(self._events)

    def _build_events(self) -> list[tuple[float, str, dict, str]]:
        rng = self._rng["events"]
        out: list[tuple[float, str, dict, str]] = []
        base_sys, base_dia, base_hr = rng.normal(118, 8), rng.normal(76, 6), rng.normal(68, 7)
        window = timecourse.infusion_window_min(self.plan)
        for e in self.plan.events:
            t_s = e.at_min * 60.0
            value = dict(e.value)
            if e.kind == "vitals" and not value:
                # Ketamine raises blood pressure and heart rate, peaking near the infusion's end
                # (the same in both arms: vitals must not unblind the condition).
                rise = 0.0
                if window is not None:
                    start, stop = window
                    x = np.clip((e.at_min - start) / max(stop - start, 1e-9), 0, 1) \
                        if e.at_min <= stop else max(0.0, 1 - (e.at_min - stop) / 20.0)
                    rise = float(x)
                value = {"sys_mmhg": int(round(base_sys + 20 * rise + rng.normal(0, 4))),
                         "dia_mmhg": int(round(base_dia + 10 * rise + rng.normal(0, 3))),
                         "hr_bpm": int(round(base_hr + 10 * rise + rng.normal(0, 3)))}
            out.append((t_s, e.kind, value, e.note))
            if e.kind == "infusion_start":
                dur = value.get("duration_min")
                if dur is None and window is not None:
                    dur = window[1] - window[0]
                if dur:
                    rate = float(self.cfg["infusion_volume_ml"]) / (float(dur) / 60.0)
                    out.append((t_s, "pump_rate", {"ml_per_h": round(rate, 1)}, ""))
            if e.kind == "infusion_stop":
                out.append((t_s, "pump_rate", {"ml_per_h": 0.0}, ""))
        out.sort(key=lambda x: x[0])
        return out

    def linewidth_hz_at(self, index: int) -> float:
        """True NAA FWHM (Hz) of scan `index`."""
        return float(np.interp(self.extra_lw_hz[index], self._fwhm_grid, self._fwhm_vals))

    def truth(self, n_scans: int | None = None) -> dict[str, Any]:
        """JSON-serialisable ground truth of the whole session, or of its first `n_scans` scans
        (what was actually sent when a stream stopped early)."""
        upto = self.n_scans if n_scans is None else max(0, min(int(n_scans), self.n_scans))
        met = [i for i, k in enumerate(self.kinds[:upto]) if k == "metabolite"]
        transients = []
        for j, i in enumerate(met):
            conc = dict(self.concentrations)
            conc["Glu"] = conc["Glu"] * float(self.glu_scale[i])
            transients.append({
                "transient": j, "scan": i, "t_s": float(self.t_s[i]),
                "concentrations_mm": {k: round(v, 5) for k, v in conc.items()},
                "glu_scale": round(float(self.glu_scale[i]), 6),
                "ratios": {k: round(v, 6) for k, v in _ratios(conc).items()},
                "apparent_ratios": {k: round(v, 6) for k, v in _ratios(
                    {m: c * self.te_weights[m] for m, c in conc.items()}).items()},
                "freq_hz": round(float(self.freq_hz[i]), 4),
                "phase_deg": round(float((self.phase_deg[i] + 180.0) % 360.0 - 180.0), 3),
                "linewidth_hz": round(self.linewidth_hz_at(i), 4),
                "signal_fraction": round(float(self.amp[i]), 4),
                "residual_water_ratio": round(float(abs(self.water[i])), 4),
                "lipid_height_ratio": round(float(abs(self.lipid_amp[i])), 4),
                "motion": bool(self.motion_flag[i]), "coil_epoch": int(self.epoch[i]),
            })
        arr0 = self.coil_arrays[0]
        return {
            "plan": self.plan.name, "plan_source": Path(self.plan.source).name if self.plan.source else "",
            "seed": self.seed, "scenario": str(self.cfg["scenario"]), "sex": self.sex,
            # No drug in the plan and no arm asked for: there is no condition to record.
            "condition": self.condition if (self._condition_given
                                            or timecourse.infusion_window_min(self.plan)) else None,
            "kit_code": self.plan.kit_code,
            "response_pct": float(self.cfg["response_pct"]),
            "effective_response_pct": float(self.cfg["response_pct"])
            * timecourse.arm_factor(self.plan, self.condition, self.sex),
            "infusion_window_min": timecourse.infusion_window_min(self.plan),
            "basis": {"names": list(self.basis.names), "meta": _jsonable(self.basis.meta)},
            "baseline_concentrations_mm": self.concentrations,
            "te_weights": self.te_weights,
            "snr_naa_single": float(self.cfg["snr_naa_single"]),
            "linewidth_hz": self.linewidth_hz, "lorentzian_hz": self.lorentzian_hz,
            "bold_narrowing_hz": self.bold_narrowing_hz,
            "field_distribution": {"offsets_hz": list(self.field_distribution.offsets_hz),
                                   "sigmas_hz": list(self.field_distribution.sigmas_hz),
                                   "weights": list(self.field_distribution.weights)},
            "eddy_phase_rad": self.eddy_phase_rad, "eddy_tau_s": self.eddy_tau_s,
            "acq_delay_s": self.acq_delay_s,
            "naa_phase_offset_deg": self.naa_phase_offset_deg,
            "drift_hz_per_min": float(self.cfg["drift_hz_per_min"]),
            "macromolecules": [vars(c) for c in self.macromolecules],
            "residual_water_bursts": self.residual_water_bursts,
            "n_scans": upto,
            "motion_events": [e for e in self.motion_events if e["scan"] < upto],
            "coil_failures": self.coil_failures,
            "coils": {"sensitivities": _cplx(arr0.sensitivities), "noise_cov": _cplx(arr0.noise_cov)},
            "prep_scans": [{"scan": i, "kind": k, "t_s": float(self.t_s[i]),
                            "freq_hz": round(float(self.freq_hz[i]), 4),
                            "phase_deg": round(float((self.phase_deg[i] + 180.0) % 360.0 - 180.0), 3)}
                           for i, k in enumerate(self.kinds[:upto]) if k != "metabolite"],
            "transients": transients,
        }

    def write_truth(self, path: str | Path, n_scans: int | None = None) -> None:
        Path(path).write_text(json.dumps(self.truth(n_scans), separators=(",", ":")))


def _ratios(conc: dict[str, float]) -> dict[str, float]:
    """True Glu/tCr, Glx/tCr, Glu/tNAA and Glx/tNAA (the measures a block result reports)."""
    tcr = conc.get("Cr", 0.0) + conc.get("PCr", 0.0)
    tnaa = conc.get("NAA", 0.0) + conc.get("NAAG", 0.0)
    glx = conc["Glu"] + conc.get("Gln", 0.0)
    out = {}
    if tcr > 0:
        out.update({"Glu/tCr": conc["Glu"] / tcr, "Glx/tCr": glx / tcr})
    if tnaa > 0:
        out.update({"Glu/tNAA": conc["Glu"] / tnaa, "Glx/tNAA": glx / tnaa})
    return out


def _pick(value: Any, draw: Any) -> float:
    return float(value) if value is not None else float(draw())


def _cplx(a: np.ndarray) -> dict[str, list]:
    return {"re": np.real(a).round(6).tolist(), "im": np.imag(a).round(6).tolist()}


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))
