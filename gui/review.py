"""Review mode: a stored session folder (docs/session-format.md) read into a `SessionModel`.

Reads through the one session-folder reader (`protocols.session_folder`), so it needs neither the
agent nor Qt, and it follows the same rules as every other reader (a torn last line is skipped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gui.model import SessionModel
from protocols.session_folder import SessionFolderError, SessionReader, read_block_spectrum, read_jsonl

__all__ = ["SessionFolderError", "load_block_spectrum", "load_session", "load_transients", "read_jsonl"]


def load_session(session_dir: str | Path, model: SessionModel | None = None) -> SessionModel:
    """A review model of the stored session in `session_dir`."""
    reader = SessionReader(session_dir)
    header = {**reader.header}
    header.setdefault("session", reader.folder.name)
    model = model if model is not None else SessionModel(live=False)
    model.set_session(header, reader.plan or {})
    model.add_results(reader.fits())
    model.add_events(reader.events())
    if reader.end is not None:
        model.mark_ended()
    model.session_dir = reader.folder  # type: ignore[attr-defined]  # lets the view fetch block spectra
    return model


def load_block_spectrum(session_dir: str | Path, block: int) -> dict[str, Any] | None:
    """`ppm`, `data`, `fit`, `baseline` and `components` of one block, or None if not stored."""
    return read_block_spectrum(Path(session_dir), block)


def load_transients(session_dir: str | Path) -> list[dict[str, Any]]:
    """Per-transient frequency, phase and rejection (transients.jsonl), if the agent wrote it."""
    return read_jsonl(Path(session_dir) / "transients.jsonl")
