"""The record of what was done to a spectrum and a basis on their way to the fit.

One decision is one dict {target, what, action, message, ...details}:
    target  "data" | "water" | "basis"
    what    format | acquisition | dimensions | conjugation | field | dwell | bandwidth | points |
            centre | scaling | echo_time | sequence
    action  read | converted | conjugated | rounding | folded | selected | assumed | skipped | none |
            warning
Each decision is logged once (logger "mrs.io", INFO; warnings at WARNING) and kept; `as_dict()` is
the JSON-safe form `mrsmon fit` puts in every result under qc.input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mrs.results import finite_json

log = logging.getLogger("mrs.io")


@dataclass
class InputRecord:
    data: dict = field(default_factory=dict)     # {source, format}
    basis: dict = field(default_factory=dict)    # {source, format} (empty when simulated)
    data_conjugated: bool = False                # relative to the file's format convention
    basis_conjugated: bool = False
    orientation: dict = field(default_factory=dict)
    decisions: list[dict] = field(default_factory=list)

    def add(self, target: str, decision: dict) -> dict:
        d = {"target": target, **decision}
        self.decisions.append(d)
        level = logging.WARNING if d.get("action") == "warning" else logging.INFO
        log.log(level, "%s: %s", target, d.get("message", ""))
        return d

    def lines(self) -> list[str]:
        """One line per decision, for a terminal."""
        return [f"{d['target']}: {d['message']}" for d in self.decisions]

    def as_dict(self) -> dict:
        return finite_json({"data": dict(self.data), "basis": dict(self.basis), "data_conjugated": self.data_conjugated,
                      "basis_conjugated": self.basis_conjugated, "orientation": dict(self.orientation),
                      "decisions": [dict(d) for d in self.decisions]})
