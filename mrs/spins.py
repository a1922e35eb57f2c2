"""Spin systems of metabolites: the table in mrs/data/spin_systems.toml and its loader.

A metabolite is a set of independent spin systems. A spin is a group of `n` equivalent protons at
one chemical shift; couplings (Hz) join spins of the same system. See docs/physics.md for sources.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DEFAULT_TABLE = Path(__file__).with_name("data") / "spin_systems.toml"


class SpinTableError(ValueError):
    """The spin-system table is malformed or lacks a requested metabolite."""


@dataclass(frozen=True)
class SpinGroup:
    label: str
    ppm: float
    n: int = 1  # equivalent protons


@dataclass(frozen=True)
class SpinSystem:
    """Coupled protons; `couplings` holds (i, j, J_hz) with i < j indexing `groups`.

    `hetero` holds (i, J_hz): weak coupling of group i to one 31P nucleus, which the proton pulses
    do not touch (so spin echoes refocus it, and it splits lines during acquisition).
    """

    groups: tuple[SpinGroup, ...]
    couplings: tuple[tuple[int, int, float], ...] = ()
    scale: float = 1.0
    hetero: tuple[tuple[int, float], ...] = ()

    @property
    def protons(self) -> int:
        return sum(g.n for g in self.groups)

    def to_dict(self) -> dict:
        return {"spins": [[g.label, g.ppm, g.n] for g in self.groups],
                "couplings": [list(c) for c in self.couplings], "scale": self.scale,
                "hetero": [list(h) for h in self.hetero]}


@dataclass(frozen=True)
class Metabolite:
    name: str
    systems: tuple[SpinSystem, ...]
    source: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def protons(self) -> float:
        """Proton count weighted by system scale (e.g. glucose anomers sum to 7)."""
        return float(sum(s.protons * s.scale for s in self.systems))

    def digest(self) -> str:
        """Stable hash of the physics (shifts, couplings, scales), for caching simulations."""
        blob = json.dumps([s.to_dict() for s in self.systems], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _parse_system(name: str, raw: dict) -> SpinSystem:
    try:
        groups = []
        for entry in raw["spins"]:
            label, ppm, *rest = entry
            n = int(rest[0]) if rest else 1
            if n < 1:
                raise SpinTableError(f"{name}: spin {label!r} has {n} protons; need at least 1")
            groups.append(SpinGroup(str(label), float(ppm), n))
        couplings = []
        for i, j, j_hz in raw.get("couplings", []):
            i, j = int(i), int(j)
            if i == j or not (0 <= i < len(groups) and 0 <= j < len(groups)):
                raise SpinTableError(f"{name}: coupling [{i}, {j}] does not join two spins of its system")
            couplings.append((min(i, j), max(i, j), float(j_hz)))
        hetero = []
        for i, j_hz in raw.get("hetero", []):
            if not 0 <= int(i) < len(groups):
                raise SpinTableError(f"{name}: heteronuclear coupling names spin {i}, which does not exist")
            hetero.append((int(i), float(j_hz)))
        scale = float(raw.get("scale", 1.0))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SpinTableError):
            raise
        raise SpinTableError(f"{name}: malformed spin system ({exc})") from exc
    if scale <= 0:
        raise SpinTableError(f"{name}: system scale must be positive, got {scale}")
    return SpinSystem(tuple(groups), tuple(couplings), scale, tuple(hetero))


def parse_table(data: dict) -> dict[str, Metabolite]:
    mets = data.get("metabolites")
    if not isinstance(mets, dict) or not mets:
        raise SpinTableError("spin table has no [metabolites.*] entries")
    out = {}
    for name, raw in mets.items():
        systems = raw.get("systems")
        if not systems:
            raise SpinTableError(f"{name}: no spin systems")
        out[name] = Metabolite(name, tuple(_parse_system(name, s) for s in systems), str(raw.get("source", "")))
    return out


@lru_cache(maxsize=4)
def _load_cached(path_str: str) -> dict[str, Metabolite]:
    path = Path(path_str)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise SpinTableError(f"cannot read spin table {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpinTableError(f"spin table {path} is not valid TOML: {exc}") from exc
    return parse_table(data)


def load_spin_table(path: str | Path | None = None) -> dict[str, Metabolite]:
    """All metabolites of a spin table (default: the bundled one), keyed by name."""
    return dict(_load_cached(str(Path(path) if path else DEFAULT_TABLE)))


def get_metabolites(names: list[str] | tuple[str, ...], path: str | Path | None = None) -> list[Metabolite]:
    table = load_spin_table(path)
    missing = [n for n in names if n not in table]
    if missing:
        raise SpinTableError(f"no spin system for {', '.join(missing)}; known: {', '.join(sorted(table))}")
    return [table[n] for n in names]


def singlet(name: str, ppm: float, protons: int) -> Metabolite:
    """A one-line metabolite (handy for tests and for reference peaks)."""
    return Metabolite(name, (SpinSystem((SpinGroup(name, ppm, protons),)),), "singlet")
