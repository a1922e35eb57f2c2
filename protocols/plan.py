"""Session plans: a small TOML format describing acquisition, timeline, processing and alarms.

A plan is read by the simulator (what to play), the agent (block size, alarm thresholds) and the
display (planned timeline). The `[simulation]` table is for the simulator only and is never sent.
See `protocols/PLANS.md` for the format.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SESSIONS_DIR = Path(__file__).parent / "sessions"


class PlanError(ValueError):
    """A session plan that cannot be used."""


# the first blocks whose own fits give the session reference (docs/fitting.md); 0 = every block on its own
DEFAULT_REFERENCE_BLOCKS = 8

@dataclass(frozen=True)
class Acquisition:
    spectrometer_frequency_mhz: float
    nucleus: str
    sequence: str
    echo_time_ms: float
    repetition_time_s: float
    points: int
    bandwidth_hz: float
    coils: int
    field_strength_t: float = 3.0
    te1_ms: float | None = None
    mixing_time_ms: float | None = None
    voxel_mm: tuple[float, float, float] = (20.0, 20.0, 20.0)
    water_reference_transients: int = 0
    noise_scans: int = 0
    dummy_scans: int = 0

    @property
    def dwell_time_s(self) -> float:
        return 1.0 / self.bandwidth_hz


@dataclass(frozen=True)
class Phase:
    name: str
    start_min: float
    end_min: float


@dataclass(frozen=True)
class PlannedEvent:
    kind: str
    at_min: float
    value: dict = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Alarms:
    """The alarm thresholds: the one place their defaults live. The rules that read them are the rule
    book of mrs/qc.py (`no_data_tr` is the display's: no transient for this many TRs). Thresholds
    never change processing."""

    naa_fwhm_hz: float = 10.0
    drift_hz_per_min: float = 2.0
    jump_hz: float = 3.0
    glu_crlb_pct: float = 15.0
    motion_fraction: float = 0.25     # share of a block's transients rejected for motion
    snr_drop_pct: float = 40.0        # block SNR this far below the session's start
    residual_water: float = 50.0      # residual water peak this many times the NAA peak (qc.residual_water)
    no_data_tr: float = 3.0


@dataclass(frozen=True)
class SessionPlan:
    name: str
    description: str
    acquisition: Acquisition
    duration_min: float
    phases: tuple[Phase, ...]
    events: tuple[PlannedEvent, ...]
    block_transients: int
    fit_window_ppm: tuple[float, float]
    measure: str
    alarms: Alarms
    kit_code: str
    simulation: dict[str, Any]
    source: str = ""
    reference_blocks: int = DEFAULT_REFERENCE_BLOCKS
    outliers: dict[str, float] = field(default_factory=dict)  # rejection settings (mrs/pipeline/reject.py)

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    @property
    def n_transients(self) -> int:
        """Metabolite transients in the session (water, noise and dummy scans come on top)."""
        return int(round(self.duration_min * 60.0 / self.acquisition.repetition_time_s))

    def to_public_dict(self) -> dict[str, Any]:
        """Everything but the simulation table: what the agent stores and displays show."""
        a = self.acquisition
        return {
            "name": self.name, "description": self.description,
            "acquisition": {k: getattr(a, k) for k in a.__dataclass_fields__},
            "duration_min": self.duration_min,
            "phases": [vars(p) for p in self.phases],
            "events": [vars(e) for e in self.events],
            "block_transients": self.block_transients,
            "fit_window_ppm": list(self.fit_window_ppm), "measure": self.measure,
            "reference_blocks": self.reference_blocks, "alarms": vars(self.alarms), "outliers": dict(self.outliers),
            "kit_code": self.kit_code,
        }


def available_plans() -> list[str]:
    return sorted(p.stem for p in SESSIONS_DIR.glob("*.toml"))


def load_plan(name_or_path: str | Path) -> SessionPlan:
    """A shipped plan by name (`quick`, `ketamine-infusion`, ...) or a .toml file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = SESSIONS_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise PlanError(f"no session protocol named {name_or_path!r}; "
                            f"available: {', '.join(available_plans())}")
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PlanError(f"cannot read session protocol {path}: {exc}") from None
    return plan_from_dict(raw, source=str(path))


def plan_from_dict(raw: dict[str, Any], source: str = "") -> SessionPlan:
    try:
        acq = dict(raw["acquisition"])
        if "voxel_mm" in acq:
            acq["voxel_mm"] = tuple(float(v) for v in acq["voxel_mm"])
        acquisition = Acquisition(**acq)
        tl = raw.get("timeline", {})
        proc = raw.get("processing", {})
        plan = SessionPlan(
            name=str(raw["name"]),
            description=str(raw.get("description", "")),
            acquisition=acquisition,
            duration_min=float(tl["duration_min"]),
            phases=tuple(Phase(**p) for p in tl.get("phases", [])),
            events=tuple(PlannedEvent(**e) for e in tl.get("events", [])),
            block_transients=int(proc.get("block_transients", 32)),
            fit_window_ppm=tuple(proc.get("fit_window_ppm", (0.2, 4.2))),
            measure=str(proc.get("measure", "Glu/tCr")),
            alarms=Alarms(**raw.get("alarms", {})),
            kit_code=str(raw.get("subject", {}).get("kit_code", "KIT-0000")),
            simulation=dict(raw.get("simulation", {})),
            source=source,
            reference_blocks=int(proc.get("reference_blocks", DEFAULT_REFERENCE_BLOCKS)),
            outliers={str(k): float(v) for k, v in raw.get("outliers", {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"session protocol {source or raw.get('name', '?')}: missing or unknown field {exc}") from None
    _check(plan)
    return plan


def _check(plan: SessionPlan) -> None:
    a = plan.acquisition
    problems = []
    if not 16 <= a.points <= 65536:
        problems.append(f"points {a.points} outside 16..65536")
    if not 1 <= a.coils <= 256:
        problems.append(f"coils {a.coils} outside 1..256")
    if a.bandwidth_hz <= 0 or a.repetition_time_s <= 0 or a.spectrometer_frequency_mhz <= 0:
        problems.append("bandwidth, TR and spectrometer frequency must be positive")
    if plan.duration_min <= 0:
        problems.append("duration_min must be positive")
    if plan.block_transients < 1:
        problems.append("block_transients must be at least 1")
    if plan.reference_blocks < 0:
        problems.append("reference_blocks must be 0 (off) or more")
    for p in plan.phases:
        if p.end_min < p.start_min:
            problems.append(f"phase {p.name} ends before it starts")
    if problems:
        raise PlanError(f"session protocol {plan.name}: " + "; ".join(problems))
