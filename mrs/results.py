"""The records the pipeline produces and every reader reads: block results, transient rows, events.

A `BlockResult` is what the agent publishes and appends to `fits.jsonl`, what `mrsmon fit --json`
prints, what the display, export, report and study read. It is frozen and typed; `to_json()` gives
the JSON object of docs/results.md (that page's field tables are generated from the `doc` of each
field here: `python -m mrs.results`, and a test keeps them equal), `from_json()` reads any stored
version back. Schema versions: 1 (before issue 13: `qc.alarms` a list of names, no `schema` key),
2 (`qc.alarms` a list of {name, severity, reason}; `schema` present).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 2


def _doc(text: str, default: Any = None, **kw) -> Any:
    if "default_factory" in kw:
        return field(metadata={"doc": text}, **kw)
    return field(default=default, metadata={"doc": text})


def finite_json(obj: Any) -> Any:
    """A copy with every non-finite float replaced by None (JSON has no NaN; a reader may hand one back)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    return obj


def _num(v: Any, digits: int | None = None) -> float | None:
    """JSON-safe float: None for NaN, infinity and anything that is not a number."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    return round(f, digits) if digits is not None else f


@dataclass(frozen=True)
class Alarm:
    """One raised alarm of the rule book (mrs/qc.py)."""

    name: str = _doc("the rule's name, e.g. `drift`")
    severity: str = _doc('"amber" (look at the quality panel) or "red" (act now)', "amber")
    reason: str = _doc("one plain sentence for the technician, with the value and the limit", "")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "severity": self.severity, "reason": self.reason}

    @classmethod
    def from_json(cls, obj: Any) -> Alarm:
        if isinstance(obj, str):  # schema 1: a bare name
            return cls(obj, "amber", f"{obj} beyond its limit")
        return cls(str(obj.get("name", "")), str(obj.get("severity", "amber")), str(obj.get("reason", "")))


@dataclass(frozen=True)
class BlockQC:
    """Quality of one block: measures, the fit's status, and the alarms raised."""

    snr: float | None = _doc("height (modulus) of the fitted NAA + NAAG peak / noise SD of the block average")
    naa_fwhm_hz: float | None = _doc("NAA linewidth (FWHM of the fitted NAA component, found by canonical name; "
                                     "a basis with only a combined tNAA entry gives that entry's, NAAG's "
                                     "singlet included), Hz")
    water_fwhm_hz: float | None = _doc("water reference linewidth, Hz; null without a water reference")
    freq_offset_hz: float | None = _doc("mean frequency correction of the block's accepted transients, Hz")
    drift_hz_per_min: float | None = _doc("slope of the per-transient frequency over the last 5 minutes, Hz/min")
    max_jump_hz: float | None = _doc("largest transient-to-transient frequency jump in the block, Hz")
    phase_deg: float | None = _doc("zero-order phase of the fit, degrees")
    residual_rel: float | None = _doc("residual SD / noise SD (1 = fits to the noise)")
    fit_status: str = _doc('"ok", "implausible" or "failed"; only "ok" blocks are plotted and analysed as data',
                           "failed")
    message: str = _doc("why, when fit_status is not ok", "")
    fit_ms: float | None = _doc("time of the fit, ms")
    fit_shift_hz: float | None = _doc("the fit's metabolite frequency shift, Hz")
    fit_nfev: int | None = _doc("function evaluations of the fit")
    water_removed: int | None = _doc("residual-water components removed from the block average (HLSVD)")
    residual_water: float | None = _doc("residual water over the metabolites: the median over the block's transients "
                                        "of the water peak (4.3-5.1 ppm, magnitude, before any removal) / the "
                                        "tallest metabolite peak of the block average (1.8-4.2 ppm: NAA in brain); "
                                        "how well the scanner suppresses water")
    fit_window_ppm: tuple[float, float] | None = _doc("the fit's window, ppm, when residual water inside the usual one "
                                                      "made it end lower (docs/fitting.md); absent otherwise")
    baseline_knots_ppm: tuple[float, ...] | None = _doc("a spectrum fitted on its own (`mrsmon fit`): the knot "
                                                         "spacings, ppm, of the baseline splines whose fits its "
                                                         "numbers average (docs/fitting.md); absent otherwise")
    alarms: tuple[Alarm, ...] = _doc("alarms raised by the rule book (mrs/qc.py), each {name, severity, reason}",
                                     default_factory=tuple)
    reference: str | None = _doc('"session": the session reference held; "provisional": fitted before it existed '
                                 '(revised later); "block": fitted on its own')
    coils_excluded: tuple[int, ...] | None = _doc("receive channels taken out of the combination (turned noisy)")
    dynamic_n_eff: float | None = _doc("refit --dynamic only: effective number of blocks behind the smoothed "
                                       "lineshape")
    dynamic_fit_ok: bool | None = _doc("refit --dynamic only: the dynamic fit of this block converged")
    dynamic_own_lineshape: bool | None = _doc("refit --dynamic only: the block kept its own lineshape (motion)")
    mirrored: bool | None = _doc("the block average's NAA/Cr/Cho singlets sit at their mirror images: the data are "
                                 "the complex conjugate of the NIfTI-MRS convention (null: undetermined)")
    undetermined: tuple[str, ...] = _doc("metabolites the data cannot determine (CRLB over 100 % without the ratio "
                                         "priors, or zero): their ratios are null", default_factory=tuple)
    input: dict[str, Any] | None = _doc("mrsmon fit only: what was done to the file and the basis before the fit "
                                        "(conjugation, field, dwell, points, ppm reference; docs/fitting.md)")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "alarms":
                out["alarms"] = [a.to_json() for a in v]
            elif f.name in ("coils_excluded", "fit_window_ppm", "baseline_knots_ppm"):
                if v is not None:
                    out[f.name] = list(v)
            elif f.name == "undetermined":
                out[f.name] = list(v)
            elif f.name.startswith("dynamic_") or f.name in _QC_OPTIONAL:
                if v is not None:
                    out[f.name] = v
            else:
                out[f.name] = v
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> BlockQC:
        obj = obj or {}
        kw = {f.name: obj[f.name] for f in dataclasses.fields(cls) if f.name in obj}
        kw["alarms"] = tuple(Alarm.from_json(a) for a in obj.get("alarms") or ())
        if kw.get("coils_excluded") is not None:
            kw["coils_excluded"] = tuple(int(c) for c in kw["coils_excluded"])
        for name in ("fit_window_ppm", "baseline_knots_ppm"):
            if kw.get(name) is not None:
                kw[name] = tuple(float(v) for v in kw[name])
        kw["undetermined"] = tuple(str(n) for n in kw.get("undetermined") or ())
        return cls(**kw)

    @property
    def ok(self) -> bool:
        return self.fit_status == "ok"

    def alarm_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.alarms)


# emitted only when set (they exist only for fitted blocks)
_QC_OPTIONAL = frozenset({"fit_shift_hz", "fit_nfev", "water_removed", "residual_water", "reference", "input"})


@dataclass(frozen=True)
class BlockSpectrum:
    """The block's spectrum over the fit window (real parts), for the display and spectra/*.npz."""

    ppm: list[float] | None = _doc("chemical shift axis, ppm")
    data: list[float] | None = _doc("the block average, phased")
    fit: list[float] | None = _doc("the fitted model")
    baseline: list[float] | None = _doc("the fitted baseline")
    components: dict[str, list[float]] | None = _doc("each basis spectrum as fitted, by name (absent from the "
                                                     "compact spectrum the agent publishes)")

    def to_json(self, components: bool = True) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("ppm", "data", "fit", "baseline") if getattr(self, k) is not None}
        if components and self.components is not None:
            out["components"] = self.components
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> BlockSpectrum | None:
        if not obj:
            return None
        comps = obj.get("components")
        return cls(*(None if obj.get(k) is None else list(obj[k]) for k in ("ppm", "data", "fit", "baseline")),
                   components=None if comps is None else {n: list(v) for n, v in comps.items()})


@dataclass(frozen=True)
class BlockResult:
    """One block: when, how many transients, what was fitted, how good it is."""

    block: int = _doc("0-based block index", 0)
    t_s: float | None = _doc("block mid-time, s from session start")
    t_start_s: float | None = _doc("first transient of the block, s from session start")
    t_end_s: float | None = _doc("last transient of the block plus one TR, s from session start")
    n_transients: int = _doc("transients averaged (after rejection)", 0)
    n_rejected: int = _doc("transients rejected", 0)
    rejected: dict[str, int] = _doc("reason -> count (motion, lipid, frequency_jump, low_signal, error...)",
                                    default_factory=dict)
    conc: dict[str, float | None] = _doc("concentrations by basis name, alias and combination (Glx, tNAA, tCr, "
                                         "tCho): mM with a water reference, else institutional units (tCr = 8)",
                                         default_factory=dict)
    sd: dict[str, float | None] = _doc("CRLB as absolute SD, same units as conc", default_factory=dict)
    crlb_pct: dict[str, float | None] = _doc("100 sd / conc", default_factory=dict)
    ratios: dict[str, float | None] = _doc('ratios such as "Glu/tCr", "Glx/tNAA"', default_factory=dict)
    ratios_sd: dict[str, float | None] = _doc("their SD (delta method, full covariance)", default_factory=dict)
    water_scaled: bool = _doc("true: conc in mM from the water reference; false: institutional units", False)
    qc: BlockQC = _doc("quality: see the table below", default_factory=BlockQC)
    revision: int = _doc("0 first publication; 1 refitted once the session reference was fixed (replaces it)", 0)
    latency_ms: float | None = _doc("agent only: last transient of the block to result published, ms")
    session: str | None = _doc("published results only: the session id")
    spectrum: BlockSpectrum | None = _doc("published results and `fit --spectra` only (fits.jsonl keeps it in "
                                          "spectra/block-NNNNN.npz)")

    @property
    def ok(self) -> bool:
        """Whether its concentrations may be used as data (fit_status ok)."""
        return self.qc.ok

    def to_json(self, spectrum: bool = True, components: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA_VERSION, "block": self.block, "t_s": self.t_s,
                               "t_start_s": self.t_start_s, "t_end_s": self.t_end_s,
                               "n_transients": self.n_transients, "n_rejected": self.n_rejected,
                               "rejected": dict(self.rejected), "conc": dict(self.conc), "sd": dict(self.sd),
                               "crlb_pct": dict(self.crlb_pct), "ratios": dict(self.ratios),
                               "ratios_sd": dict(self.ratios_sd), "water_scaled": self.water_scaled,
                               "qc": self.qc.to_json()}
        if self.revision:
            out["revision"] = self.revision
        if self.latency_ms is not None:
            out["latency_ms"] = self.latency_ms
        if self.session is not None:
            out["session"] = self.session
        if spectrum:
            out["spectrum"] = None if self.spectrum is None else self.spectrum.to_json(components)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> BlockResult:
        """Any stored or published version (unknown keys, such as `pub_seq`, are ignored)."""
        if "block" not in obj:
            raise ValueError("a block result needs its 'block' index")
        result = cls(block=int(obj["block"]), t_s=obj.get("t_s"), t_start_s=obj.get("t_start_s"),
                   t_end_s=obj.get("t_end_s"), n_transients=int(obj.get("n_transients") or 0),
                   n_rejected=int(obj.get("n_rejected") or 0), rejected=dict(obj.get("rejected") or {}),
                   conc=dict(obj.get("conc") or {}), sd=dict(obj.get("sd") or {}),
                   crlb_pct=dict(obj.get("crlb_pct") or {}), ratios=dict(obj.get("ratios") or {}),
                   ratios_sd=dict(obj.get("ratios_sd") or {}), water_scaled=bool(obj.get("water_scaled")),
                   qc=BlockQC.from_json(obj.get("qc")), revision=int(obj.get("revision") or 0),
                   latency_ms=obj.get("latency_ms"), session=obj.get("session"),
                   spectrum=BlockSpectrum.from_json(obj.get("spectrum")))
        return result if obj.get("schema") else _upgrade_v1(result)

    def replace(self, **changes) -> BlockResult:
        return dataclasses.replace(self, **changes)

    def value(self, measure: str) -> tuple[float, float]:
        """(value, SD) of a ratio ("Glu/tCr") or a metabolite ("Glu"); NaN when absent."""
        if "/" in measure:
            v, e = self.ratios.get(measure), self.ratios_sd.get(measure)
        else:
            v, e = self.conc.get(measure), self.sd.get(measure)
        return (_finite(v), _finite(e))


def _upgrade_v1(r: BlockResult) -> BlockResult:
    """Schema 1 rows had no alarm for the fit's own status (the display judged it): add it, as the rule
    book (mrs/alarms/fit_failed.py, fit_implausible.py) raises it now."""
    why = f": {r.qc.message}" if r.qc.message else ""
    if r.qc.fit_status == "failed":
        extra = Alarm("fit_failed", "red", f"Fit failed on block {r.block}{why}")
    elif r.qc.fit_status == "implausible":
        extra = Alarm("fit_implausible", "amber", f"Fit of block {r.block} implausible{why}")
    else:
        return r
    return r.replace(qc=dataclasses.replace(r.qc, alarms=(extra, *r.qc.alarms)))


def _finite(x: Any) -> float:
    v = _num(x)
    return math.nan if v is None else v


@dataclass(frozen=True)
class TransientRow:
    """One processed transient (transients.jsonl)."""

    seq: int = _doc("sequence number", 0)
    t_s: float | None = _doc("acquisition time, s from session start")
    freq_hz: float | None = _doc("frequency removed by alignment, Hz")
    phase_deg: float | None = _doc("phase removed by alignment, degrees")
    rejected: str | None = _doc("rejection reason, or null when accepted")
    block: int | None = _doc("block (window start) it belongs to; null when it could not be processed")

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "t_s": self.t_s, "freq_hz": self.freq_hz, "phase_deg": self.phase_deg,
                "rejected": self.rejected, "block": self.block}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TransientRow:
        return cls(int(obj["seq"]), obj.get("t_s"), obj.get("freq_hz"), obj.get("phase_deg"), obj.get("rejected"),
                   obj.get("block"))


@dataclass(frozen=True)
class EventRecord:
    """One event (events.jsonl): from the scanner or marked on a display."""

    kind: str = _doc("infusion_start, infusion_stop, vitals, pretreatment, note, ...", "note")
    t_s: float | None = _doc("s from session start")
    t_ns: int | None = _doc("absolute time, ns")
    seq: int | None = _doc("the scanner's sequence number; null for display events")
    source: str = _doc('"scanner" or "display"', "scanner")
    value: dict[str, Any] = _doc("values (pump rate, blood pressure, duration_min...)", default_factory=dict)
    note: str = _doc("free text", "")
    id: str | None = _doc("display events: the id the display gave it")

    def to_json(self) -> dict[str, Any]:
        out = {"seq": self.seq, "source": self.source, "kind": self.kind, "t_ns": self.t_ns, "t_s": self.t_s,
               "value": dict(self.value), "note": self.note}
        if self.id is not None:
            out["id"] = self.id
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> EventRecord:
        """Tolerant of what older versions stored: a field of the wrong type reads as absent."""
        def whole(x: Any) -> int | None:
            return x if isinstance(x, int) and not isinstance(x, bool) else None

        value = obj.get("value")
        return cls(kind=str(obj.get("kind", "note")), t_s=_num(obj.get("t_s")), t_ns=whole(obj.get("t_ns")),
                   seq=whole(obj.get("seq")), source=str(obj.get("source", "scanner")),
                   value=dict(value) if isinstance(value, Mapping) else {},
                   note=str(obj.get("note") or ""), id=obj.get("id") if isinstance(obj.get("id"), str) else None)


def event_order(e: EventRecord) -> float:
    """Sort key: session time, events without one last."""
    return e.t_s if e.t_s is not None and math.isfinite(e.t_s) else math.inf


def schema_markdown() -> str:
    """The field tables of docs/results.md, from the `doc` of every field."""
    parts = []
    for cls, title in ((BlockResult, "Block result (`fits.jsonl`, the `result` topic, `mrsmon fit --json`)"),
                       (BlockQC, "`qc`"), (Alarm, "`qc.alarms[]`"), (BlockSpectrum, "`spectrum`"),
                       (TransientRow, "Transient row (`transients.jsonl`)"), (EventRecord, "Event (`events.jsonl`)")):
        parts.append(f"### {title}\n\n| field | type | meaning |\n|---|---|---|")
        for f in dataclasses.fields(cls):
            kind = str(f.type).replace("|", "or")
            parts.append(f"| `{f.name}` | {kind} | {f.metadata.get('doc', '')} |")
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    print(schema_markdown())
