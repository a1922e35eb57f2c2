"""The streaming processor shared by the agent, `mrsmon fit` and refit.

    proc = BlockProcessor(acq, basis, block_transients, window_ppm=(0.2, 4.2), alarms=None, step=None,
                          reference_blocks=0)
    outputs = proc.add(seq, t_s, flags, data)   # data (coils, points) complex
    outputs += proc.flush()                     # end of stream

Per metabolite transient: coil combination (whitened SVD; weights fixed once per session, from the
water reference when it comes first, else from the first transients), eddy-current correction (when
a water reference came first), spectral registration against a running reference (the average of
recent accepted transients), outlier rejection with a reason. Per block (non-overlapping, or sliding
windows with `step`): the average of accepted transients, residual water removal when strong, a
variable-projection linear-combination fit warm-started from the previous block, CRLB, QC.
`add` and `flush` never raise: a failing stage gives a block with fit_status "failed".

Session reference (`reference_blocks` K > 0): the lineshape details that belong to the session, not
to a block (each macromolecule's own width and position, the singlets' T2 offsets;
`LCFitter.session_mask`), are taken once from the first K blocks (the median of their own fits) and
then held for every block. A block fit then frees only what moves (phases, shifts, group linewidths,
amplitudes, baseline): on simulated ketamine sessions this halves the block-to-block scatter of
Glu/tCr at the same bias. The first K blocks are published as "provisional" (fitted on their own);
when the reference is fixed they are refitted with it and published again (`"revision": 1`), so every
block of the session ends up fitted with the same reference.

The per-transient stage depends only on session-level settings (`preprocessing_key()`), never on the
block settings, so its results can be cached and reused for any block/window/step:

    proc.prepared_sink = records.append         # PreparedRecord of every per-transient result
    proc.add_prepared(rec) ...                   # feed them back: the same block outputs as `add`
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mrs.basis import WATER_PPM, Basis
from mrs.preproc import coils as _coils
from mrs.preproc import eddy as _eddy
from mrs.preproc.align import Aligner, align_all
from mrs.preproc.outliers import OutlierDetector, TransientMetrics
from mrs.preproc.water import remove_water, water_dominates

WATER_CONC_MM = 55.5e3 * 0.78   # pure water 55.5 M times an assumed grey-matter water content
TCR_REFERENCE_MM = 8.0          # institutional units: the fitted tCr is scaled to 8 mM
ALIGN_WINDOW_PPM = (1.8, 4.2)
LIPID_PPM = (0.8, 1.8)
FIRST_TRANSIENTS = 8            # buffered to estimate coil weights and the first reference
# Session-level, never tied to the block size, so the per-transient results (and a cache of them)
# are the same for any refit block/window/step. 32 = the block size of every shipped plan, the value
# the reference length and the rebuild threshold had for them before (`max(block, 16)`, `max(8, block//2)`).
REFERENCE_TRANSIENTS = 32       # the running reference: mean of this many recent accepted transients
NOISY_COIL_FACTOR = 9.0         # a coil whose noise variance rose 9x (noise x3) leaves the combination
REBUILD_AFTER_REJECTED = 16     # consecutive rejections after which the reference is rebuilt
PREPROC_VERSION = 3             # bump whenever the per-transient processing changes its numbers


@dataclass
class _Transient:
    seq: int
    t_s: float
    fid: np.ndarray       # combined, eddy-corrected, aligned
    freq_hz: float
    phase_deg: float
    rejected: str | None
    index: int            # 0-based count among metabolite transients


@dataclass(frozen=True)
class PreparedRecord:
    """One per-transient result, in processing order; what a preprocessing cache stores.

    kind "state": `fid` is None, `weights` the coil weights, `eddy` the eddy phase (or None);
    kind "water": `fid` the combined water-reference FID (complex128);
    kind "reference": `fid` the new running reference (complex128; at the start and after a rebuild);
    kind "transient": a metabolite transient: `fid` combined, eddy-corrected and aligned (complex64),
    `freq_hz`, `phase_deg`, `rejected`, and the outlier metrics (needed to resume, not to refit);
    kind "error": a transient that could not be processed (`rejected` holds the message).
    """

    kind: str
    seq: int = -1
    t_s: float = 0.0
    fid: np.ndarray | None = None
    freq_hz: float = float("nan")
    phase_deg: float = float("nan")
    rejected: str | None = None
    residual_ratio: float = float("nan")
    lipid_ratio: float = float("nan")
    weights: np.ndarray | None = None
    eddy: np.ndarray | None = None


def _unusable(seq: int, t_s: float, message: str | None) -> dict:
    """The transient row of a transient that could not be processed."""
    return {"kind": "transient", "seq": int(seq), "t_s": float(t_s), "freq_hz": None, "phase_deg": None,
            "rejected": message, "block": None}


def _num(v: Any, digits: int | None = None) -> float | None:
    """JSON-safe float: None for NaN/inf."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    return round(f, digits) if digits is not None else f


class BlockProcessor:
    def __init__(self, acq: dict, basis: Basis | None, block_transients: int,
                 window_ppm: tuple[float, float] = (0.2, 4.2), alarms: dict | None = None,
                 step: int | None = None, reference_blocks: int = 0) -> None:
        self.acq = dict(acq)
        self.n = int(acq["points"])
        self.dwell_s = float(acq["dwell_time_s"])
        self.cf_mhz = float(acq["spectrometer_frequency_mhz"])
        self.centre_ppm = float(acq.get("centre_ppm", WATER_PPM))
        self.tr_s = float(acq.get("repetition_time_s") or 0.0)
        self.block = max(1, int(block_transients))
        self.step = min(max(1, int(step)), self.block) if step else self.block
        self.window_ppm = (float(min(window_ppm)), float(max(window_ppm)))
        self.alarms = dict(alarms or {})
        self._basis = basis
        self._fitter = None
        self._fitter_error: str | None = None
        self.aligner = Aligner(self.n, self.dwell_s, self.cf_mhz, self.centre_ppm, ALIGN_WINDOW_PPM)
        freq = np.fft.fftfreq(self.n, self.dwell_s)
        ppm = self.centre_ppm + freq / self.cf_mhz
        win_ppm = ppm[self.aligner.win]
        self._lipid_sel = (win_ppm >= LIPID_PPM[0]) & (win_ppm <= LIPID_PPM[1])
        self._lipid_win = np.nonzero((ppm >= LIPID_PPM[0]) & (ppm <= LIPID_PPM[1]))[0]
        # Smooth differences (residual-water tails, baseline) are not what marks a bad transient:
        # the residual is taken after removing a low-order polynomial over the window.
        xw = np.linspace(-1, 1, self.aligner.win.size)
        self._smooth_q = np.linalg.qr(np.polynomial.legendre.legvander(xw, 4))[0]
        xl = np.linspace(-1, 1, self._lipid_win.size)
        self._lipid_q = np.linalg.qr(np.polynomial.legendre.legvander(xl, 2))[0]
        self.max_jump_hz = max(6.0, 2.0 * float(self.alarms.get("jump_hz", 3.0)))
        self.outliers = OutlierDetector(max_jump_hz=self.max_jump_hz)
        self.prepared_sink: Callable[[PreparedRecord], None] | None = None  # see add_prepared
        self.sink_error: str | None = None
        # session state
        self._noise: list[np.ndarray] = []
        self._water_raw: list[np.ndarray] = []
        self._water_comb: list[np.ndarray] = []   # each water reference combined with the weights
        self._whitening: np.ndarray | None = None
        self.coils_excluded = np.zeros(0, bool)     # channels taken out of the combination (noisy)
        self._coil_noise_hist: deque[np.ndarray] = deque(maxlen=8)
        self._coil_noise0: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._eddy: np.ndarray | None = None
        self._pending: list[tuple[int, float, np.ndarray]] = []
        self._ref_fids: deque[np.ndarray] = deque(maxlen=REFERENCE_TRANSIENTS)
        self._ref_sum: np.ndarray | None = None
        self._recent: deque[_Transient] = deque(maxlen=self.block)
        self._count = 0
        self._next_start = 0
        self._covered = 0            # transients included in an emitted window
        self._block_index = 0
        self._freq_t: list[tuple[float, float]] = []
        self._x_prev: np.ndarray | None = None
        self._run_rejected: list[np.ndarray] = []
        # session reference (see the module docstring)
        self.reference_blocks = max(0, int(reference_blocks))
        # A session (with its reference) is fitted without the free lineshape kernel: on the
        # simulator's sessions the kernel moved Glu/tCr by +6 to +10 % (docs/fitting.md); files
        # and spectra fitted on their own (`mrsmon fit`) use it.
        self._free_lineshape = self.reference_blocks == 0
        self._session_x: np.ndarray | None = None
        self._provisional_x: list[np.ndarray] = []   # the provisional blocks' own fits
        self._reference_due = False
        self._provisional: list[tuple[int, list[_Transient]]] = []
        # (block index, averaged FID, FitResult) of every published fit, when set to a list (refit)
        self.records: list | None = None

    # ------------------------------------------------------------------ public API
    def add(self, seq: int, t_s: float, flags: frozenset[str] | set[str], data: np.ndarray) -> list[dict]:
        return self._guarded(seq, t_s, lambda: self._add(int(seq), float(t_s), frozenset(flags or ()), data))

    def _guarded(self, seq: int, t_s: float, step: Callable[[], list[dict]]) -> list[dict]:
        """Run one transient's `step`. A session reference that became due is fixed first (after the
        block that completed it was published, so not in its latency). Never raises into the agent:
        a failing step reports the transient as unusable."""
        out = self._fix_reference_safely() if self._reference_due else []
        try:
            return out + step()
        except Exception as exc:
            self._sink(PreparedRecord("error", int(seq), float(t_s), rejected=f"error: {exc}"))
            return out + [_unusable(seq, t_s, f"error: {exc}")]

    def flush(self) -> list[dict]:
        out: list[dict] = []
        try:
            if self._pending:
                out += self._start_from_pending()
            uncovered = self._count - max(self._covered, self._next_start)
            n_window = self._count - self._next_start
            if uncovered > 0 and n_window >= math.ceil(self.block / 2):
                items = list(self._recent)[-n_window:]
                out += self._fit_window(items)
                self._covered = self._count
            if self._reference_due or (self._session_x is None and len(self._provisional) >= 2):
                out += self._fix_reference_safely()
        except Exception as exc:
            out.append({"kind": "block", "result": self._failed_result(
                self._block_index, [], f"flush failed: {exc}")})
        return out

    def preprocessing_key(self) -> dict:
        """Everything the per-transient results depend on besides the data (block settings do not)."""
        return {"version": PREPROC_VERSION, "points": self.n, "dwell_time_s": self.dwell_s,
                "cf_mhz": self.cf_mhz, "centre_ppm": self.centre_ppm, "first_transients": FIRST_TRANSIENTS,
                "reference_transients": REFERENCE_TRANSIENTS, "rebuild_after_rejected": REBUILD_AFTER_REJECTED,
                "max_jump_hz": self.max_jump_hz, "align_window_ppm": list(ALIGN_WINDOW_PPM)}

    def add_prepared(self, rec: PreparedRecord) -> list[dict]:
        """Feed one PreparedRecord (from `prepared_sink`, in the same order): the same outputs as `add`
        gave for the raw data, without redoing coil combination, registration and outlier tests. The
        registration state is kept too, so raw `add` can continue afterwards (resume)."""
        return self._guarded(rec.seq, rec.t_s, lambda: self._add_prepared(rec))

    def warm_up(self) -> None:
        """Build the fitter and fit one synthetic spectrum with it, so that the session's first block
        does not pay the first calls of every code path (its fit took 45 ms instead of ~10 live).
        Nothing of the session's state changes."""
        fitter = self.fitter
        if fitter is None:
            return
        fid = (fitter.fids * fitter.scale[:, None]).sum(axis=0) * np.exp(-np.pi * 5.0 * fitter.t)
        try:
            fitter.fit(fid)
        except Exception:  # a warm-up only: the first block will say what is wrong
            pass

    @property
    def fitter(self):
        """The LCFitter (built on first use; None when the basis cannot be made)."""
        if self._fitter is None and self._fitter_error is None:
            try:
                from mrs.fit import FitSettings, LCFitter

                if self._basis is None:
                    from mrs.basis_sim import basis_for_acquisition

                    self._basis = basis_for_acquisition(self.acq)
                settings = FitSettings(window_ppm=self.window_ppm)
                if not self._free_lineshape:
                    settings = FitSettings(window_ppm=self.window_ppm, kernel_half_width_hz=0.0)
                self._fitter = LCFitter(self._basis, self.dwell_s, self.n, self.cf_mhz, self.centre_ppm, settings)
            except Exception as exc:
                self._fitter_error = f"no usable basis: {exc}"
        return self._fitter

    # ------------------------------------------------------------------ transients
    def _add(self, seq: int, t_s: float, flags: frozenset[str], data: np.ndarray) -> list[dict]:
        x = np.asarray(data)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.n:
            raise ValueError(f"transient shape {np.shape(data)} is not (coils, {self.n})")
        x = x.astype(complex)
        if not np.all(np.isfinite(x)):
            raise ValueError("transient holds NaN or infinity")
        if "dummy" in flags:
            return []
        if "noise" in flags:
            self._noise.append(x)
            return []
        if "water_ref" in flags:
            self._water_raw.append(x)
            if self._weights is None:
                self._set_weights(x)
            water = _coils.combine(x, self._weights)
            self._water_comb.append(water)
            self._sink(PreparedRecord("water", seq, t_s, fid=water))
            return []
        if self._weights is None or self._ref_sum is None:
            self._pending.append((seq, t_s, x))
            # Not min(FIRST_TRANSIENTS, block): the weights and first reference must not depend on
            # the block size. (A block under 8 then waits for the 8th transient for its first fit.)
            if len(self._pending) >= FIRST_TRANSIENTS:
                return self._start_from_pending()
            return []
        self._watch_coils(x)
        return self._process(seq, t_s, self._prepare(x))

    def _whitening_matrix(self, fallback: np.ndarray) -> np.ndarray:
        if self._noise:
            cov = _coils.noise_covariance(np.stack(self._noise))
        else:
            cov = _coils.noise_from_tail(fallback)
        return _coils.whitening_matrix(cov)

    def _set_weights(self, reference: np.ndarray) -> None:
        self._whitening = self._whitening_matrix(reference)
        self._weights = _coils.svd_weights(reference, self._whitening)
        self.coils_excluded = np.zeros(self._weights.shape[0], bool)
        if self._water_raw:
            water = _coils.combine(np.mean(self._water_raw, axis=0), self._weights)
            self._eddy = _eddy.eddy_phase(water)
        self._sink(PreparedRecord("state", weights=self._weights.copy(),
                                  eddy=None if self._eddy is None else self._eddy.copy()))

    def _watch_coils(self, x: np.ndarray) -> None:
        """A receive channel that turns noisy mid-session would, with the session's fixed weights,
        multiply the combined noise (one of 32 coils at 25x its noise: about 4x). Each coil's noise
        is followed in the FID tail (signal decayed); once the median of the last 8 transients is
        NOISY_COIL_FACTOR times its start value, the coil's weight is set to zero and the others are
        rescaled so the combined signal keeps its amplitude (water scaling and the alignment reference
        stay valid). A dead channel adds no noise and is left in."""
        if x.shape[0] < 2 or self._whitening is None:
            return
        tail = x[:, -max(16, self.n // 8):]
        self._coil_noise_hist.append(np.mean(np.abs(tail - tail.mean(axis=1, keepdims=True)) ** 2, axis=1))
        if len(self._coil_noise_hist) < self._coil_noise_hist.maxlen:
            return
        now = np.median(np.array(self._coil_noise_hist), axis=0)
        if self._coil_noise0 is None:
            self._coil_noise0 = now
            self._coil_noise_hist.clear()
            return
        bad = (now > NOISY_COIL_FACTOR * np.maximum(self._coil_noise0, 1e-300)) & ~self.coils_excluded
        if bad.any():
            self._exclude_coils(bad)

    def _exclude_coils(self, bad: np.ndarray) -> None:
        w = self._weights
        w_inv = np.linalg.inv(self._whitening)
        sens = w_inv @ (w @ w_inv).conj()  # coil signal sensitivities (up to a constant): W^-1 u
        kept = np.where(bad, 0.0, w)
        denom = kept @ sens
        if abs(denom) > 0:
            kept = kept * ((w @ sens) / denom)
        self._weights = kept
        self.coils_excluded = self.coils_excluded | bad
        self._sink(PreparedRecord("state", weights=self._weights.copy(),
                                  eddy=None if self._eddy is None else self._eddy.copy()))

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        fid = _coils.combine(x, self._weights)
        if self._eddy is not None:
            fid = _eddy.apply_eddy(fid, self._eddy)
        # (Residual water is not removed per transient: the registration ignores smooth tails when
        # the water dominates, the outlier metrics always do; HLSVD runs once per block if needed.)
        return fid

    def _start_from_pending(self) -> list[dict]:
        pending, self._pending = self._pending, []
        stack = np.stack([p[2] for p in pending])
        if self._weights is None:
            self._set_weights(stack.mean(0) if len(pending) > 1 else stack[0])
        fids = np.array([self._prepare(p[2]) for p in pending])
        if self._ref_sum is None:
            # First reference: the transients aligned to their own mean, twice.
            aligned, _, _ = align_all(fids, self.aligner, iterations=2)
            ref = aligned.mean(0)
            self._set_reference(ref)
        out: list[dict] = []
        for (seq, t_s, _), fid in zip(pending, fids, strict=True):
            out += self._process(seq, t_s, fid)
        return out

    def _reference(self) -> np.ndarray:
        return self._ref_sum / len(self._ref_fids)

    def _process(self, seq: int, t_s: float, fid: np.ndarray) -> list[dict]:
        ref = self._reference()
        recent = [f for _, f in self._freq_t[-8:] if f is not None and np.isfinite(f)]
        drift_hz = float(np.median(recent)) if recent else 0.0
        # Where water sits now: the drift moves it with the metabolites (a fixed band would, after a
        # large drift, take a metabolite line for water).
        centre_now = self.centre_ppm - drift_hz / self.cf_mhz
        wet = water_dominates(fid, self.dwell_s, self.cf_mhz, centre_now)
        if wet:  # a residual-water burst: its tail would corrupt the shift, scale and the reference
            fid, _ = remove_water(fid, self.dwell_s, self.cf_mhz, centre_now, n_points=256)
            wet = water_dominates(fid, self.dwell_s, self.cf_mhz, centre_now)
            if water_dominates(ref, self.dwell_s, self.cf_mhz, centre_now):
                # compare like with like: a reference that still holds the water (the first one is
                # the transients' own mean) would make the removed water look like motion (a
                # single-spectrum file was rejected whole)
                ref, _ = remove_water(ref, self.dwell_s, self.cf_mhz, centre_now, n_points=256)
        reg = self.aligner.register(fid, ref, remove_smooth=wet, center_hz=drift_hz)
        ref_w = self.aligner.window_spectrum(ref)
        x_w = self.aligner.window_spectrum(reg.fid)
        noise_var = self._noise_var(fid)
        n_ref = max(len(self._ref_fids), 1)
        expected = noise_var * (1.0 + reg.scale**2 / n_ref)
        diff = x_w - reg.scale * ref_w
        diff = diff - self._smooth_q @ (self._smooth_q.T @ diff)
        res_ratio = float(np.sum(np.abs(diff) ** 2) / (max(expected, 1e-300) * (diff.size - self._smooth_q.shape[1])))
        # lipid region is outside the alignment window: compare full spectra there
        x_full = np.fft.fft(reg.fid)[self._lipid_win]
        r_full = np.fft.fft(ref)[self._lipid_win]
        d_lip = x_full - reg.scale * r_full
        d_lip = d_lip - self._lipid_q @ (self._lipid_q.T @ d_lip)  # drop smooth tails (residual water)
        lip_ratio = float(np.sum(np.abs(d_lip) ** 2)
                          / (max(expected, 1e-300) * max(d_lip.size - self._lipid_q.shape[1], 1)))
        scale_snr = float(np.sqrt(np.mean(np.abs(ref_w) ** 2) / max(noise_var, 1e-300)) * np.sqrt(ref_w.size))
        reason = self.outliers.assess(TransientMetrics(reg.freq_hz, reg.scale, scale_snr, res_ratio, lip_ratio))
        phase_deg = float(np.degrees(reg.phase_rad))
        # The block average uses the complex64-rounded FID, what a preprocessing cache stores, so
        # blocks from raw data and from the cache are bit-identical (rounding: ~1e-7 relative).
        fid32 = reg.fid.astype(np.complex64)
        self._sink(PreparedRecord("transient", seq, t_s, fid=fid32, freq_hz=reg.freq_hz, phase_deg=phase_deg,
                                  rejected=reason, residual_ratio=res_ratio, lipid_ratio=lip_ratio))
        self._freq_t.append((t_s, reg.freq_hz))
        self._run_rejected = self._run_rejected + [fid] if reason else []
        if len(self._run_rejected) >= REBUILD_AFTER_REJECTED:
            # Everything has been an outlier for a while: the voxel or the coil setup changed for
            # good. Start a new reference from the recent transients instead of rejecting forever.
            aligned, _, _ = align_all(np.array(self._run_rejected), self.aligner, iterations=2)
            self._set_reference(aligned.mean(0))
        fid_c = fid32.astype(complex)
        if reason is None:  # (the rounded FID: a processor restored from the records has the same reference)
            self._push_reference(fid_c)
        return self._push(_Transient(seq, t_s, fid_c, reg.freq_hz, phase_deg, reason, self._count))

    def _sink(self, rec: PreparedRecord) -> None:
        if self.prepared_sink is not None:
            try:
                self.prepared_sink(rec)
            except Exception as exc:  # a failing consumer must not corrupt the processing: drop it
                self.prepared_sink = None
                self.sink_error = f"prepared_sink failed: {exc}"

    def _set_reference(self, ref: np.ndarray) -> None:
        """A new running reference (the first, or a rebuild): the outlier history starts again."""
        if self._ref_sum is not None:  # a rebuild (the first reference keeps the detector as it is)
            self.outliers.reset()
        self._ref_fids.clear()
        self._ref_fids.append(ref)
        self._ref_sum = ref.copy()
        self._run_rejected = []
        self._sink(PreparedRecord("reference", fid=np.asarray(ref, complex).copy()))

    def _push_reference(self, fid: np.ndarray) -> None:
        if len(self._ref_fids) == self._ref_fids.maxlen:
            self._ref_sum = self._ref_sum - self._ref_fids[0]
        self._ref_fids.append(fid)
        self._ref_sum = self._ref_sum + fid

    def _push(self, rec: _Transient) -> list[dict]:
        """Count a processed transient into the block windows; fit a window when it is complete."""
        self._recent.append(rec)
        self._count += 1
        out = [{"kind": "transient", "seq": rec.seq, "t_s": rec.t_s, "freq_hz": _num(rec.freq_hz, 4),
                "phase_deg": _num(rec.phase_deg, 3), "rejected": rec.rejected,
                "block": rec.index // self.step}]
        if self._count - self._next_start >= self.block:
            out += self._fit_window(list(self._recent))
            self._covered = self._count
            self._next_start += self.step
        return out

    def _add_prepared(self, rec: PreparedRecord) -> list[dict]:
        if rec.kind == "state":
            self._weights = np.asarray(rec.weights, complex)
            self.coils_excluded = self._weights == 0
            self._eddy = None if rec.eddy is None else np.asarray(rec.eddy, float)
            return []
        if rec.kind == "water":
            self._water_comb.append(np.asarray(rec.fid, complex))
            return []
        if rec.kind == "reference":
            self._set_reference_quiet(np.asarray(rec.fid, complex))
            return []
        if rec.kind == "error":
            return [_unusable(rec.seq, rec.t_s, rec.rejected)]
        if rec.kind != "transient":
            raise ValueError(f"unknown prepared record kind {rec.kind!r}")
        fid = np.asarray(rec.fid, np.complex64)
        if fid.shape != (self.n,):
            raise ValueError(f"prepared FID shape {fid.shape} is not ({self.n},)")
        fid = fid.astype(complex)
        freq, reason = float(rec.freq_hz), rec.rejected
        self.outliers.replay(freq, rec.residual_ratio, rec.lipid_ratio, accepted=reason is None)
        self._freq_t.append((float(rec.t_s), freq))
        if reason:  # the pre-alignment FID, in case a resumed run of rejections rebuilds the reference
            t = np.arange(self.n) * self.dwell_s
            self._run_rejected = self._run_rejected + [
                fid * np.exp(1j * np.radians(rec.phase_deg) + 2j * np.pi * freq * t)]
        else:
            self._run_rejected = []
            if self._ref_sum is not None:
                self._push_reference(fid)
        return self._push(_Transient(int(rec.seq), float(rec.t_s), fid, freq, float(rec.phase_deg), reason,
                                     self._count))

    def _set_reference_quiet(self, ref: np.ndarray) -> None:
        sink, self.prepared_sink = self.prepared_sink, None  # replaying: not a new record
        try:
            self._set_reference(ref)
        finally:
            self.prepared_sink = sink

    def _noise_var(self, fid: np.ndarray) -> float:
        """Mean |X|^2 per point of pure noise in the spectrum (from the outer spectral regions)."""
        spec = np.fft.fft(fid)
        k = max(8, self.n // 8)
        edge = spec[self.n // 2 - k:self.n // 2 + k]  # highest |frequency|: far from any metabolite
        edge = edge - edge.mean()
        return float(np.mean(np.abs(edge) ** 2))

    # ------------------------------------------------------------------ blocks
    def _fit_window(self, items: list[_Transient]) -> list[dict]:
        index = self._block_index
        self._block_index += 1
        out = [{"kind": "block", "result": self._fit_safely(index, items)}]
        if self.reference_blocks and self._session_x is None:
            self._provisional.append((index, items))
            if self._count >= self.reference_blocks * self.block:
                self._reference_due = True  # fitted with the next transient or at the end
        return out

    def _fit_safely(self, index: int, items: list[_Transient]) -> dict:
        try:
            return self._fit_items(index, items)
        except Exception as exc:
            return self._failed_result(index, items, f"block processing failed: {exc}")

    def _fix_reference_safely(self) -> list[dict]:
        self._reference_due = False
        try:
            return self._fix_reference()
        except Exception:  # never raise into the agent: blocks go on being fitted on their own
            self.reference_blocks = 0
            return []

    def _fix_reference(self) -> list[dict]:
        """The median of the provisional blocks' own fits becomes the session reference: its session
        parameters are held from now on, and the provisional blocks are refitted with them. (The
        median, not a fit of their average: a block or two disturbed by motion or lipid does not
        move it; on a simulated restless session a fit of the average misled every later block.)"""
        provisional, self._provisional = self._provisional, []
        fits, self._provisional_x = self._provisional_x, []
        if self.fitter is None or not fits:
            self.reference_blocks = 0  # no usable reference: blocks go on being fitted on their own
            return []
        self._session_x = np.median(np.array(fits), axis=0)
        revised = []
        for index, items in provisional:
            result = self._fit_safely(index, items)
            result["revision"] = 1
            revised.append({"kind": "block", "result": result})
        return revised

    def _times(self, items: list[_Transient]) -> tuple[float, float, float]:
        if not items:
            return (float("nan"),) * 3
        t0 = min(i.t_s for i in items)
        t1 = max(i.t_s for i in items) + self.tr_s
        return (t0 + t1) / 2, t0, t1

    def _failed_result(self, index: int, items: list[_Transient], message: str) -> dict:
        t_mid, t0, t1 = self._times(items)
        rejected = Counter(i.rejected for i in items if i.rejected)
        return {"block": index, "t_s": _num(t_mid), "t_start_s": _num(t0), "t_end_s": _num(t1),
                "n_transients": sum(1 for i in items if i.rejected is None), "n_rejected": sum(rejected.values()),
                "rejected": dict(rejected), "conc": {}, "sd": {}, "crlb_pct": {}, "ratios": {}, "ratios_sd": {},
                "water_scaled": False,
                "qc": {"snr": None, "naa_fwhm_hz": None, "water_fwhm_hz": None, "freq_offset_hz": None,
                       "drift_hz_per_min": None, "max_jump_hz": None, "phase_deg": None, "residual_rel": None,
                       "fit_status": "failed", "message": message, "fit_ms": None, "alarms": []},
                "spectrum": None}

    def _water_fid(self) -> np.ndarray | None:
        if not self._water_comb:
            return None
        return np.mean(self._water_comb, axis=0)  # = combining the mean (linear), and cacheable

    def _fit_items(self, index: int, items: list[_Transient]) -> dict:
        from mrs import qc as _qc
        from mrs.names import is_macromolecule

        t_mid, t0, t1 = self._times(items)
        accepted = [i for i in items if i.rejected is None]
        rejected = Counter(i.rejected for i in items if i.rejected)
        if not accepted:
            return self._failed_result(index, items, "every transient of the block was rejected")
        fitter = self.fitter
        if fitter is None:
            return self._failed_result(index, items, self._fitter_error or "no fitter")
        avg = np.mean([i.fid for i in accepted], axis=0)
        # Residual water: remove by HLSVD only when it dominates the metabolites.
        water_removed = 0
        if water_dominates(avg, self.dwell_s, self.cf_mhz, self.centre_ppm, factor=3.0):
            avg, water_removed = remove_water(avg, self.dwell_s, self.cf_mhz, self.centre_ppm, n_points=256)
        t_fit = time.perf_counter()
        if self._session_x is not None:
            hold = fitter.session_mask()
            x0 = self._session_x if self._x_prev is None else np.where(hold, self._session_x, self._x_prev)
            res = fitter.fit(avg, x0=x0, hold=hold)
            reference = "session"
        else:
            res = fitter.fit(avg, x0=self._x_prev)
            reference = "provisional" if self.reference_blocks else "block"
        fit_ms = (time.perf_counter() - t_fit) * 1e3
        if reference == "provisional" and res.success:
            self._provisional_x.append(np.array(res.x, float))
        if self.records is not None:
            self.records.append((index, avg, res))
        if res.success:
            self._x_prev = res.x
        quantities = res.quantities()
        ratios = res.ratios()
        # a metabolite the data cannot determine gets a warning (qc.undetermined), not a ratio
        lost = [n for n in res.undetermined() if not is_macromolecule(n)]
        ratios = {k: ((float("nan"), e) if k.split("/")[0] in lost else (r, e)) for k, (r, e) in ratios.items()}
        # Units: water-scaled mM when a water reference exists, else tCr := 8 (institutional units).
        water = self._water_fid()
        water_scaled = False
        factor = 1.0
        if water is not None:
            amp = _water_amplitude(water)
            if amp > 0:
                factor = 2.0 * WATER_CONC_MM / amp
                water_scaled = True
        if not water_scaled:
            tcr = quantities.get("tCr", (float("nan"), 0.0))[0]
            factor = TCR_REFERENCE_MM / tcr if tcr > 0 else 1.0
        conc = {k: v * factor for k, (v, _) in quantities.items()}
        sd = {k: e * factor for k, (_, e) in quantities.items()}
        pct = {k: (100.0 * sd[k] / conc[k] if conc[k] > 0 else float("inf")) for k in conc}
        # QC
        noise = _qc.noise_sd(avg, self.dwell_s, self.cf_mhz, self.centre_ppm)
        naa_name = next((n for n in res.names if n == "NAA"), None) or next(
            (n for n in res.names if n.lower() == "naa"), None)
        # SNR: height of the fitted spectrum (baseline removed) at NAA, as the peak appears (NAA with
        # what lies under it), over the noise SD of the real spectrum.
        sel = (res.ppm > 1.9) & (res.ppm < 2.1)
        naa_height = float((res.prediction - res.baseline).real[sel].max(initial=0.0))
        if naa_name and naa_name in res.components:
            naa_fid = fitter.component_fid(naa_name, res.x)
            naa_fwhm = _qc.fwhm_hz(naa_fid, self.dwell_s, self.cf_mhz, (1.9, 2.1), self.centre_ppm)
        else:
            naa_fwhm = float("nan")
        snr = naa_height / noise if noise > 0 else float("nan")
        water_fwhm = (_qc.fwhm_hz(water, self.dwell_s, self.cf_mhz, (4.0, 5.3), self.centre_ppm)
                      if water is not None else None)
        f_acc = np.array([i.freq_hz for i in accepted])
        f_all = np.array([i.freq_hz for i in sorted(items, key=lambda i: i.t_s)])
        ft = np.array(self._freq_t)
        drift = _qc.drift_hz_per_min(ft[:, 0], ft[:, 1]) if len(ft) else 0.0
        resid_rel = float(np.std(res.residual.real) / noise) if noise > 0 else float("nan")
        status, message = _qc.classify(
            {k: v for k, v in conc.items()}, pct, naa_fwhm, snr, res.success, res.message)
        if status == "ok" and not res.success:
            status = "failed"
        alarms = []
        if np.isfinite(naa_fwhm) and naa_fwhm > float(self.alarms.get("naa_fwhm_hz", 10.0)):
            alarms.append("naa_fwhm")
        if abs(drift) > float(self.alarms.get("drift_hz_per_min", 2.0)):
            alarms.append("drift")
        if _qc.max_jump_hz(f_all) > float(self.alarms.get("jump_hz", 3.0)):
            alarms.append("jump")
        glu_pct = pct.get("Glu")
        if glu_pct is not None and not (glu_pct <= float(self.alarms.get("glu_crlb_pct", 15.0))):
            alarms.append("glu_crlb")
        if not res.success:
            message = message or res.message
        qc = {
            "snr": _num(snr, 3), "naa_fwhm_hz": _num(naa_fwhm, 3),
            "water_fwhm_hz": _num(water_fwhm, 3) if water_fwhm is not None else None,
            "freq_offset_hz": _num(f_acc.mean(), 4), "drift_hz_per_min": _num(drift, 4),
            "max_jump_hz": _num(_qc.max_jump_hz(f_all), 4),
            "phase_deg": _num(np.degrees(res.phase0_rad), 3), "residual_rel": _num(resid_rel, 4),
            "fit_status": status, "message": message, "fit_ms": _num(fit_ms, 3),
            "fit_shift_hz": _num(res.params.get("shift_hz_met"), 4),
            "fit_nfev": res.nfev, "water_removed": water_removed, "alarms": alarms,
            "reference": reference, "undetermined": lost,
            "coils_excluded": [int(k) for k in np.nonzero(self.coils_excluded)[0]],
        }
        spectrum = {
            # tolist(): Python floats as before, ten times faster than a comprehension (on the latency path)
            "ppm": np.asarray(res.ppm, float).tolist(), "data": res.data.real.tolist(),
            "fit": res.prediction.real.tolist(), "baseline": res.baseline.real.tolist(),
            "components": {n: c.real.tolist() for n, c in res.components.items()},
        }
        return {
            "block": index, "t_s": _num(t_mid), "t_start_s": _num(t0), "t_end_s": _num(t1),
            "n_transients": len(accepted), "n_rejected": sum(rejected.values()), "rejected": dict(rejected),
            "conc": {k: _num(v) for k, v in conc.items()}, "sd": {k: _num(v) for k, v in sd.items()},
            "crlb_pct": {k: _num(v, 3) for k, v in pct.items()},
            "ratios": {k: _num(r) for k, (r, _) in ratios.items()},
            "ratios_sd": {k: _num(e) for k, (_, e) in ratios.items()},
            "water_scaled": water_scaled, "qc": qc, "spectrum": spectrum,
        }


def _water_amplitude(water_fid: np.ndarray) -> float:
    """Water signal at t = 0, extrapolated from the first points' log magnitude (skips point 0)."""
    mag = np.abs(np.asarray(water_fid)[1:17])
    if not np.all(mag > 0):
        return float(np.abs(water_fid[0]))
    t = np.arange(1, 17, dtype=float)
    coef = np.polyfit(t, np.log(mag), 1)
    return float(np.exp(coef[1]))
