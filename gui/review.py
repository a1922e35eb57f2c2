"""Review mode: read a stored session folder (docs/session-format.md) into a `SessionModel`.

Reads only the JSON, JSON-lines and npz files the agent writes, so it needs neither the agent nor
Qt. A half-written last line (an agent that crashed mid-append) is skipped, not fatal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gui.model import SessionModel


class SessionFolderError(ValueError):
    """A folder that is not a readable mrsmon session."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SessionFolderError(f"cannot read {path}: {exc}") from None
    if not isinstance(obj, dict):
        raise SessionFolderError(f"{path} does not hold a JSON object")
    return obj


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Objects of a JSON-lines file; a torn or blank line is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def load_session(session_dir: str | Path, model: SessionModel | None = None) -> SessionModel:
    """A review model of the stored session in `session_dir`."""
    folder = Path(session_dir)
    if not folder.is_dir():
        raise SessionFolderError(f"{folder} is not a folder")
    if not (folder / "session.json").exists():
        raise SessionFolderError(f"{folder} has no session.json: not an mrsmon session folder")
    header = _read_json(folder / "session.json")
    header.setdefault("session", folder.name)
    plan = _read_json(folder / "plan.json") if (folder / "plan.json").exists() else {}
    model = model if model is not None else SessionModel(live=False)
    model.set_session(header, plan)
    model.add_results(read_jsonl(folder / "fits.jsonl"))
    model.add_events(read_jsonl(folder / "events.jsonl"))
    if (folder / "end.json").exists():
        model.mark_ended()
    model.session_dir = folder  # type: ignore[attr-defined]  # lets the view fetch block spectra
    return model


def spectrum_path(session_dir: str | Path, block: int) -> Path:
    return Path(session_dir) / "spectra" / f"block-{int(block):05d}.npz"


def load_block_spectrum(session_dir: str | Path, block: int) -> dict[str, Any] | None:
    """`ppm`, `data`, `fit`, `baseline` and `components` of one block, or None if not stored."""
    path = spectrum_path(session_dir, block)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out: dict[str, Any] = {k: np.asarray(z[k]) for k in z.files if not k.startswith("comp_")}
            out["components"] = {k[5:]: np.asarray(z[k]) for k in z.files if k.startswith("comp_")}
    except (OSError, ValueError) as exc:
        raise SessionFolderError(f"cannot read {path}: {exc}") from None
    return out


def load_transients(session_dir: str | Path) -> list[dict[str, Any]]:
    """Per-transient frequency, phase and rejection (transients.jsonl), if the agent wrote it."""
    return read_jsonl(Path(session_dir) / "transients.jsonl")
