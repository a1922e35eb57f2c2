"""Display state of one session, without Qt: plan, header, block results, events, status, alarms.

The model is fed from a live link (snapshot + published messages) or from a stored session folder
(`gui.review`). Views subscribe with `model.subscribe(aspect, callback)`; a callback fires only when
the aspect really changed, and `model.version(aspect)` lets a timer-driven view redraw only what
changed. Block results are `mrs.results.BlockResult`; the baseline and percent change are the ones of
`mrs.timecourse` (the report and the study use the same); the traffic light shows the alarms the agent's
rule book raised for the block (`result.qc.alarms`, mrs/qc.py) plus what only a display can know (the
link, data no longer arriving, agent alarms). These are pure functions, tested without a display.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gui.series import GrowingArray
from mrs.results import BlockResult, EventRecord, event_order
from mrs.timecourse import NO_BASELINE, Baseline, baseline_stats, infusion_window_s, percent_change, planned_window_s
from protocols.plan import Alarms

__all__ = ["NO_BASELINE", "Baseline", "BlockResult", "DrawnVersions", "Light", "LightInputs", "SessionModel",
           "assess_light", "baseline_stats", "percent_change", "smooth_trend"]

ASPECTS = ("session", "results", "events", "status", "alarms", "link", "measure", "selection")

# Header fields a display may hold. Anything else (for instance a simulated condition) is dropped:
# the only drug information on screen is the blinded kit code.
HEADER_KEYS = (
    "session", "kit_code", "protocol", "spectrometer_frequency_mhz", "nucleus", "dwell_time_s",
    "points", "coils", "echo_time_s", "repetition_time_s", "sequence", "field_strength_t",
    "start_time_ns", "voxel_mm",
)
PREFERRED_MEASURES = ("Glu/tCr", "Glx/tNAA", "Glu/tNAA", "Glx/tCr", "Glu", "Gln", "Glx", "NAA", "tNAA")
DEFAULT_ALARMS = vars(Alarms())  # the plan's defaults (protocols/plan.py): the one copy
SPECTRUM_CACHE_BLOCKS = 16     # block spectra kept in memory (latest + frozen + recently viewed)
ALARM_RECENT_S = 60.0          # an agent alarm colours the light for this long
LINK_LOST_S = 3.0              # no status for this long: the agent counts as unreachable

Callback = Callable[[], None]


def _finite(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def measure_crlb_pct(result: BlockResult, measure: str) -> float:
    """CRLB of the measure in percent: the stored one for a metabolite, 100 SD/value for a ratio."""
    if "/" not in measure:
        stored = _finite(result.crlb_pct.get(measure))
        if not math.isnan(stored):
            return stored
    value, sd = result.value(measure)
    return 100.0 * sd / abs(value) if value and not math.isnan(value) else math.nan


# --------------------------------------------------------------------------------------------
# Pure computations
# --------------------------------------------------------------------------------------------

def smooth_trend(t_min: np.ndarray, values: np.ndarray, sigma_min: float,
                 dt_min: float | None = None) -> np.ndarray:
    """Gaussian kernel smoother in time that skips NaNs (failed blocks) and normalises at the edges.

    Works on the sample index with a kernel width from the median spacing, so it is O(n * width)
    and a 3600-point sliding-window session smooths in well under a millisecond per point.
    """
    t = np.asarray(t_min, float)
    v = np.asarray(values, float)
    n = v.shape[0]
    if n == 0:
        return v.copy()
    good = np.isfinite(v)
    if n < 2 or sigma_min <= 0:
        return np.where(good, v, np.nan)
    dt = dt_min if dt_min is not None else float(np.median(np.diff(t)))
    sigma_pts = max(sigma_min / dt, 0.5) if dt > 0 else 1.0
    half = int(min(n - 1, math.ceil(3 * sigma_pts)))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma_pts) ** 2)
    # "full" then the centre: "same" returns the kernel's length when the kernel is the longer
    # (the first blocks of a session), which misaligned the trend with its blocks
    num = np.convolve(np.where(good, v, 0.0), k, mode="full")[half:half + n]
    den = np.convolve(good.astype(float), k, mode="full")[half:half + n]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[den < 0.3] = np.nan  # too far from any good block to say anything
    return out


@dataclass(frozen=True)
class Light:
    """The traffic light: `level` is grey, green, amber or red; `reason` is one plain sentence."""

    level: str
    reason: str
    others: tuple[str, ...] = ()

    @property
    def word(self) -> str:
        return {"green": "OK", "amber": "CHECK", "red": "STOP", "grey": "WAIT"}[self.level]


@dataclass(frozen=True)
class LightInputs:
    live: bool
    has_session: bool = False
    ended: bool = False
    link: str = "review"                  # review | connecting | live | lost
    link_silence_s: float | None = None   # since the last message from the agent
    transient_age_s: float | None = None  # since the last transient reached the agent
    n_transients: int = 0
    tr_s: float = 2.0
    block_transients: int = 32
    thresholds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ALARMS))
    last_result: BlockResult | None = None
    block_age_s: float | None = None
    measure: str = "Glu/tCr"
    recent_alarms: tuple[Mapping[str, Any], ...] = ()


def _fmt_age(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


def assess_light(x: LightInputs) -> Light:
    """Red: stop and act. Amber: look at the quality panel. Green: data flowing and healthy."""
    th = {**DEFAULT_ALARMS, **dict(x.thresholds)}
    red: list[str] = []
    amber: list[str] = []
    if x.live:
        if x.link == "lost":
            silent = f" for {_fmt_age(x.link_silence_s)}" if x.link_silence_s is not None else ""
            red.append(f"Agent not answering{silent}: check the agent computer and network")
        elif x.link == "connecting":
            return Light("grey", "Connecting to the agent…")
        if not x.has_session:
            if red:
                return Light("red", red[0], tuple(red[1:]))
            return Light("grey", "Waiting for the scanner to start a session")
        if x.ended:
            return Light("grey", "Session ended: recording complete")
        limit_s = th["no_data_tr"] * x.tr_s
        if x.link != "lost":
            if x.transient_age_s is None or x.n_transients == 0:
                amber.append("Session open, no transient received yet: is the sequence running?")
            elif x.transient_age_s > limit_s:
                red.append(f"No data for {_fmt_age(x.transient_age_s)} (one expected every "
                           f"{x.tr_s:g} s): is the scanner still acquiring?")
    for alarm in x.recent_alarms:
        text = str(alarm.get("message") or alarm.get("code") or "agent alarm")
        (red if str(alarm.get("level", "")).lower() in ("error", "critical", "red") else amber).append(
            f"Agent: {text}")
    r = x.last_result
    if r is not None:  # the block's alarms, raised once by the agent's rule book (mrs/qc.py)
        for alarm in r.qc.alarms:
            (red if alarm.severity == "red" else amber).append(alarm.reason)
    if red:
        return Light("red", red[0], tuple(red[1:] + amber))
    if amber:
        return Light("amber", amber[0], tuple(amber[1:]))
    if not x.live:
        if r is None:
            return Light("grey", "Stored session without fitted blocks")
        return Light("green", f"Stored session: last block {r.block} passed all checks")
    if r is None:
        return Light("green", "Data flowing; first block not fitted yet")
    age = f" {_fmt_age(x.block_age_s)} ago" if x.block_age_s is not None else ""
    return Light("green", f"Data flowing; block {r.block} fitted{age}, quality in range")


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

_QC_COLUMNS = ("freq_offset_hz", "drift_hz_per_min", "naa_fwhm_hz", "snr", "max_jump_hz")


class SessionModel:
    """State of one session as a display sees it. Plain Python: no Qt, no sockets, no files."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, live: bool = False) -> None:
        self.clock = clock
        self.live = live
        self._subs: dict[str, list[Callback]] = {a: [] for a in ASPECTS}
        self._versions: dict[str, int] = dict.fromkeys(ASPECTS, 0)
        self.link: str = "connecting" if live else "review"
        self.link_detail: str = ""
        self.last_message_rx: float | None = None
        self.spectra: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.selected_block: int | None = None
        self.measure: str = "Glu/tCr"
        self._reset_session()

    # ---- observer plumbing ----
    def subscribe(self, aspect: str, callback: Callback) -> None:
        if aspect not in self._subs:
            raise ValueError(f"unknown model aspect {aspect!r}; one of {', '.join(ASPECTS)}")
        self._subs[aspect].append(callback)

    def version(self, aspect: str) -> int:
        return self._versions[aspect]

    def _emit(self, aspect: str) -> None:
        self._versions[aspect] += 1
        for cb in list(self._subs[aspect]):
            cb()

    # ---- session ----
    def _reset_session(self) -> None:
        self.header: dict[str, Any] = {}
        self.plan: dict[str, Any] = {}
        self.rows: list[BlockResult] = []
        self._row_of: dict[int, int] = {}
        self.columns: dict[str, GrowingArray] = {}
        self._init_columns()
        self._measure_names: list[str] = []
        self.events: list[EventRecord] = []
        self._event_keys: set[tuple] = set()
        self.status: dict[str, Any] = {}
        self.status_rx: float | None = None
        self.alarms: deque[tuple[float, dict[str, Any]]] = deque(maxlen=50)
        self.ended = False
        self.last_result_rx: float | None = None
        self.spectra = OrderedDict()
        self.selected_block = None
        self._trend_cache: tuple[tuple, np.ndarray] | None = None
        self._spacing_cache: tuple[tuple, float] | None = None

    def _init_columns(self) -> None:
        names = ("block", "t_min", "t_end_s", "value", "err", "crlb", "ok", "provisional", "n_rejected",
                 "n_transients") + _QC_COLUMNS
        self.columns = {n: GrowingArray(np.float64) for n in names}
        # rejected transients per reason, one column per reason in order of first appearance
        self.rejected_columns: dict[str, GrowingArray] = {}

    @property
    def session_id(self) -> str:
        return str(self.header.get("session", ""))

    def set_session(self, header: Mapping[str, Any], plan: Mapping[str, Any] | None = None) -> None:
        """A session started (or the display switched to another). Resets results for a new id."""
        clean = {k: header[k] for k in HEADER_KEYS if k in header}
        if "kit_code" not in clean and plan and "kit_code" in plan:
            clean["kit_code"] = plan["kit_code"]
        plan_d = dict(plan or {})
        plan_d.pop("simulation", None)
        if clean.get("session") != self.header.get("session") and self.header:
            self._reset_session()
        if clean == self.header and plan_d == self.plan:
            return
        self.header, self.plan = clean, plan_d
        measure = str(plan_d.get("measure") or self.measure or "Glu/tCr")
        if measure != self.measure:
            self.measure = measure
            self._rebuild_columns()
            self._emit("measure")
        self._emit("session")

    @property
    def has_session(self) -> bool:
        return bool(self.header)

    @property
    def thresholds(self) -> dict[str, float]:
        return {**DEFAULT_ALARMS, **{k: float(v) for k, v in (self.plan.get("alarms") or {}).items()
                                     if isinstance(v, int | float)}}

    @property
    def tr_s(self) -> float:
        tr = self.header.get("repetition_time_s") or (self.plan.get("acquisition") or {}).get(
            "repetition_time_s")
        return float(tr) if tr else 2.0

    @property
    def block_transients(self) -> int:
        return int(self.plan.get("block_transients") or 32)

    def mark_ended(self) -> None:
        if not self.ended:
            self.ended = True
            self._emit("session")

    # ---- results ----
    def add_result(self, result: Mapping[str, Any] | BlockResult) -> bool:
        """Store one block result; returns False (and emits nothing) if it changes nothing."""
        r = result if isinstance(result, BlockResult) else BlockResult.from_json(result)
        if r.spectrum is not None:
            self.put_spectrum(r.block, r.spectrum.to_json(), full=r.spectrum.components is not None)
        r = r.replace(spectrum=None, session=None)
        if self.live:
            self.last_result_rx = self.clock()
        row = self._row_of.get(r.block)
        if row is not None and self.rows[row] == r:
            return False
        if row is not None:
            self.rows[row] = r
            self._write_row(row, r)
        elif not self.rows or r.block > self.rows[-1].block:
            self._row_of[r.block] = len(self.rows)
            self.rows.append(r)
            self._append_row(r)
        else:  # out of order (rare: a late block): keep rows sorted and rebuild the columns
            self.rows.append(r)
            self.rows.sort(key=lambda x: x.block)
            self._rebuild_columns()
        self._note_measures(r)
        self._emit("results")
        return True

    def add_results(self, results: Iterable[Mapping[str, Any] | BlockResult]) -> None:
        """Bulk load (snapshot, review): one rebuild and one emission."""
        new = [(x if isinstance(x, BlockResult) else BlockResult.from_json(x)).replace(spectrum=None, session=None)
               for x in results]
        by_block = {r.block: r for r in self.rows + new}
        self.rows = [by_block[b] for b in sorted(by_block)]
        for r in self.rows:
            self._note_measures(r)
        self._rebuild_columns()
        self._emit("results")

    def _row_values(self, r: BlockResult) -> dict[str, float]:
        qc = r.qc
        value, err = r.value(self.measure)
        t_s = _finite(r.t_s)
        t_end = _finite(r.t_end_s)
        out = {"block": float(r.block), "t_min": t_s / 60.0,
               "t_end_s": t_end if not math.isnan(t_end) else t_s,
               "value": value, "err": err, "crlb": measure_crlb_pct(r, self.measure),
               "ok": 1.0 if r.ok else 0.0,
               # fitted before the session reference existed: to be revised (docs/fitting.md)
               "provisional": 1.0 if qc.reference == "provisional" else 0.0,
               "n_rejected": float(r.n_rejected), "n_transients": float(r.n_transients)}
        for c in _QC_COLUMNS:
            out[c] = _finite(getattr(qc, c))
        return out

    def _append_row(self, r: BlockResult) -> None:
        for k, v in self._row_values(r).items():
            self.columns[k].append(v)
        n = len(self.columns["block"])
        rejected = r.rejected
        self._add_reasons(rejected, n - 1)
        for reason, col in self.rejected_columns.items():
            col.append(float(rejected.get(reason, 0) or 0))

    def _write_row(self, i: int, r: BlockResult) -> None:
        for k, v in self._row_values(r).items():
            self.columns[k][i] = v
        rejected = r.rejected
        self._add_reasons(rejected, len(self.columns["block"]))
        for reason, col in self.rejected_columns.items():
            col[i] = float(rejected.get(reason, 0) or 0)

    def _add_reasons(self, rejected: Mapping[str, Any], n_rows: int) -> None:
        """A reason seen for the first time gets a column of zeros for the rows before it."""
        for reason in rejected:
            if reason not in self.rejected_columns:
                col = GrowingArray(np.float64, capacity=max(64, n_rows))
                for _ in range(n_rows):
                    col.append(0.0)
                self.rejected_columns[reason] = col

    def _rebuild_columns(self) -> None:
        self._row_of = {r.block: i for i, r in enumerate(self.rows)}
        for col in self.columns.values():
            col.clear()
        self.rejected_columns = {}
        for r in self.rows:
            self._append_row(r)

    def rejected(self) -> dict[str, np.ndarray]:
        """Transients rejected per block, one array per reason (in order of first appearance)."""
        return {reason: col.view() for reason, col in self.rejected_columns.items()}

    def _note_measures(self, r: BlockResult) -> None:
        known = set(self._measure_names)
        new = [m for m in list(r.ratios) + list(r.conc) if m not in known]
        if new:
            self._measure_names.extend(new)

    def available_measures(self) -> list[str]:
        """Ratios and metabolites seen in any block; the usual glutamate measures first."""
        names = list(self._measure_names)
        first = [m for m in PREFERRED_MEASURES if m in names]
        ratios = sorted(m for m in names if "/" in m and m not in first)
        metabolites = sorted(m for m in names if "/" not in m and m not in first)
        out = first + ratios + metabolites
        return out if out else [self.measure]

    def set_measure(self, measure: str) -> None:
        if measure == self.measure:
            return
        self.measure = measure
        self._rebuild_columns()
        self._emit("measure")

    def col(self, name: str) -> np.ndarray:
        return self.columns[name].view()

    @property
    def last_result(self) -> BlockResult | None:
        return self.rows[-1] if self.rows else None

    def result(self, block: int) -> BlockResult | None:
        i = self._row_of.get(int(block))
        return self.rows[i] if i is not None else None

    # ---- derived numbers ----
    def infusion_start_s(self) -> float | None:
        """The recorded infusion start; else the planned one (marked as such in the view)."""
        return infusion_window_s(self.events, self.plan)[0]

    def planned_infusion_start_s(self) -> float | None:
        return planned_window_s(self.plan)[0]

    def baseline(self) -> Baseline:
        return baseline_stats(self.col("t_end_s"), self.col("value"), self.col("ok") > 0.5,
                              self.infusion_start_s())

    def percent_change(self) -> np.ndarray:
        """Each block's % change from the baseline, as the percent axis reads it (NaN where not data)."""
        return percent_change(self.plotted_values(), self.baseline().mean)

    def plotted_values(self) -> np.ndarray:
        """The measure with blocks that did not fit cleanly set to NaN (never plotted as data)."""
        return np.where(self.col("ok") > 0.5, self.col("value"), np.nan)

    def block_spacing_min(self) -> float:
        """Median time between blocks in minutes (1 with fewer than two blocks), cached per
        results version: the trend and the rejection bars both need it on every new block."""
        key = (self._versions["results"], self._versions["measure"], len(self.rows))
        if self._spacing_cache is None or self._spacing_cache[0] != key:
            t = self.col("t_min")
            self._spacing_cache = (key, float(np.median(np.diff(t))) if len(t) > 1 else 1.0)
        return self._spacing_cache[1]

    def trend(self) -> np.ndarray:
        """Smoothed measure, cached per results/measure version (it is read at every redraw)."""
        key = (self._versions["results"], self._versions["measure"], len(self.rows))
        if self._trend_cache is None or self._trend_cache[0] != key:
            t = self.col("t_min")
            dt_block = self.block_spacing_min()
            sigma_min = max(1.0, 1.5 * dt_block)  # about three blocks, never under a minute
            self._trend_cache = (key, smooth_trend(t, self.plotted_values(), sigma_min, dt_block))
        return self._trend_cache[1]

    # ---- events ----
    def _take_event(self, event: Mapping[str, Any] | EventRecord) -> bool:
        """Add one event (a published or stored row, or a record) unless it is already held."""
        e = event if isinstance(event, EventRecord) else EventRecord.from_json(event)
        start_ns = self.header.get("start_time_ns")
        if e.t_s is None and isinstance(e.t_ns, int) and isinstance(start_ns, int):
            e = dataclasses.replace(e, t_s=(e.t_ns - start_ns) / 1e9)
        key = (e.kind, e.t_ns, e.t_s, e.source, e.note)
        if key in self._event_keys:
            return False
        self._event_keys.add(key)
        self.events.append(e)
        return True

    def add_event(self, event: Mapping[str, Any] | EventRecord) -> bool:
        if not self._take_event(event):
            return False
        self.events.sort(key=event_order)
        self._emit("events")
        return True

    def add_events(self, events: Iterable[Mapping[str, Any] | EventRecord]) -> None:
        changed = False
        for e in events:
            changed |= self._take_event(e)
        if changed:
            self.events.sort(key=event_order)
            self._emit("events")

    # ---- status, alarms, link ----
    def set_status(self, status: Mapping[str, Any]) -> None:
        s = {k: v for k, v in status.items() if k not in ("pub_seq",)}
        self.status_rx = self.clock()
        self.last_message_rx = self.status_rx
        if s != self.status:
            self.status = s
            self._emit("status")

    def add_alarm(self, alarm: Mapping[str, Any]) -> None:
        """An alarm from the agent; one with level "clear" ends the earlier alarms of its code."""
        if str(alarm.get("level", "")).lower() == "clear":
            kept = [(t, a) for t, a in self.alarms if a.get("code") != alarm.get("code")]
            self.alarms.clear()
            self.alarms.extend(kept)
        else:
            self.alarms.append((self.clock(), {k: v for k, v in alarm.items() if k != "pub_seq"}))
        self._emit("alarms")

    def set_link(self, state: str, detail: str = "") -> None:
        if (state, detail) != (self.link, self.link_detail):
            self.link, self.link_detail = state, detail
            self._emit("link")

    def touch(self) -> None:
        """Any message from the agent arrived."""
        self.last_message_rx = self.clock()

    def transient_age_s(self) -> float | None:
        age = self.status.get("last_transient_age_s")
        if age is None or self.status_rx is None:
            return None
        return float(age) + max(0.0, self.clock() - self.status_rx)

    def block_age_s(self) -> float | None:
        return None if self.last_result_rx is None else max(0.0, self.clock() - self.last_result_rx)

    def link_silence_s(self) -> float | None:
        return None if self.last_message_rx is None else max(0.0, self.clock() - self.last_message_rx)

    def recent_alarms(self) -> tuple[dict[str, Any], ...]:
        now = self.clock()
        return tuple(a for t, a in self.alarms if now - t <= ALARM_RECENT_S)

    def light(self) -> Light:
        return assess_light(LightInputs(
            live=self.live, has_session=self.has_session, ended=self.ended, link=self.link,
            link_silence_s=self.link_silence_s(), transient_age_s=self.transient_age_s(),
            n_transients=int(self.status.get("transients", 0) or 0) if self.status else 0,
            tr_s=self.tr_s, block_transients=self.block_transients, thresholds=self.thresholds,
            last_result=self.last_result, block_age_s=self.block_age_s(), measure=self.measure,
            recent_alarms=self.recent_alarms() if self.live else ()))

    # ---- snapshot ----
    def load_snapshot(self, snap: Mapping[str, Any]) -> None:
        """Replace everything with an agent snapshot (SPEC.md section 6)."""
        session = snap.get("session") or {}
        if not session:  # an agent without a current session (e.g. restarted after the end): keep ours
            if snap.get("status"):
                self.set_status(snap["status"])
            return
        if session.get("session") != self.header.get("session"):
            self._reset_session()
        self.set_session(session, snap.get("plan") or {})
        self.add_results(snap.get("results") or [])
        self.add_events(snap.get("events") or [])
        latest = snap.get("latest") or {}
        if latest.get("spectrum") and latest.get("block") is not None:
            self.put_spectrum(int(latest["block"]), latest["spectrum"], full="components" in latest["spectrum"])
        if snap.get("status"):
            self.set_status(snap["status"])
        if snap.get("ended") or (snap.get("status") or {}).get("ended"):
            self.mark_ended()

    # ---- spectra and selection ----
    def put_spectrum(self, block: int, spectrum: Mapping[str, Any], full: bool = False) -> None:
        """Keep a block's arrays (as float arrays), bounded to SPECTRUM_CACHE_BLOCKS blocks."""
        block = int(block)
        old = self.spectra.get(block)
        if old is not None and old.get("_full") and not full:
            self.spectra.move_to_end(block)
            return
        arrays: dict[str, Any] = {"_full": bool(full)}
        for k in ("ppm", "data", "fit", "baseline", "residual"):
            if spectrum.get(k) is not None:
                arrays[k] = np.asarray(spectrum[k], dtype=np.float64)
        arrays["components"] = {n: np.asarray(v, dtype=np.float64)
                                for n, v in (spectrum.get("components") or {}).items()}
        self.spectra[block] = arrays
        self.spectra.move_to_end(block)
        while len(self.spectra) > SPECTRUM_CACHE_BLOCKS:
            victim = next(b for b in self.spectra if b != self.selected_block)
            del self.spectra[victim]
        self._emit("selection")

    def displayed_block(self) -> int | None:
        """The frozen block if the user picked one, else the newest block with a spectrum."""
        if self.selected_block is not None:
            return self.selected_block
        return self.rows[-1].block if self.rows else None

    def select_block(self, block: int | None) -> None:
        if block != self.selected_block:
            self.selected_block = None if block is None else int(block)
            self._emit("selection")


class DrawnVersions:
    """What a view has drawn: `changed(*aspects)` is True once for each new version of any aspect,
    so a timer-driven view redraws only what the model really changed."""

    def __init__(self, model: SessionModel) -> None:
        self.model = model
        self._drawn: dict[str, int] = {}

    def changed(self, *aspects: str) -> bool:
        changed = False
        for a in aspects:
            v = self.model.version(a)
            if self._drawn.get(a) != v:
                self._drawn[a] = v
                changed = True
        return changed
