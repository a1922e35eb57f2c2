"""The control link's requests, checked before anything is done with them (no sockets here).

A request is one bounded JSON object (`protocols.wire.parse_json`: size, depth, finite numbers). Every
field is checked for type and range, session ids for the SPEC's character set and for resolving inside
the sessions folder. A refusal is a `ControlError` with a code and a sentence, answered as
`{"ok": false, "code": ..., "error": ...}` and counted; nothing a display sends can stop the agent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mrs.results import finite_json
from protocols.session_folder import read_block_spectrum
from protocols.wire import EVENT_KINDS, parse_json, valid_session_id

CONTROL_OPS = ("ping", "snapshot", "event", "block")
MAX_BLOCK = 1_000_000
MAX_NOTE_CHARS = 500


class ControlError(ValueError):
    def __init__(self, code: str, sentence: str):
        super().__init__(sentence)
        self.code = code


def parse_request(body: bytes) -> dict[str, Any]:
    try:
        req = parse_json(body)
    except ValueError as exc:
        raise ControlError("BAD_JSON", f"request refused: {exc}") from None
    if not isinstance(req, dict):
        raise ControlError("BAD_JSON", "a request must be a JSON object")
    if req.get("op") not in CONTROL_OPS:
        raise ControlError("UNKNOWN_OP", f"unknown op {str(req.get('op'))[:40]!r}; use {', '.join(CONTROL_OPS)}")
    return req


def session_folder(sessions_dir: Path, sid: Any) -> Path:
    """The folder of an existing session named by a request; ControlError otherwise."""
    if not valid_session_id(sid):
        raise ControlError("BAD_SESSION_ID", "session must be 1-64 characters of letters, digits, '.', '_' or '-', "
                                             "starting with a letter or digit")
    folder = sessions_dir / sid
    if folder.resolve().parent != sessions_dir.resolve() or not (folder / "session.json").is_file():
        raise ControlError("NO_SESSION", f"no session {sid!r} is stored here")
    return folder


def block_number(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_BLOCK:
        raise ControlError("BAD_FIELD", f"block must be an integer from 0 to {MAX_BLOCK}, not {str(value)[:40]!r}")
    return value


def event_fields(req: dict[str, Any]) -> dict[str, Any]:
    """kind, value, note, id and t_ns of an `event` request, checked; ControlError otherwise."""
    kind = req.get("kind")
    if kind not in EVENT_KINDS:
        raise ControlError("BAD_FIELD", f"event kind {str(kind)[:40]!r} is not one of {', '.join(EVENT_KINDS)}")
    value = req.get("value") or {}
    if not isinstance(value, dict):
        raise ControlError("BAD_FIELD", "event value must be a JSON object")
    note = req.get("note", "")
    if not isinstance(note, str):
        raise ControlError("BAD_FIELD", "event note must be a string")
    event_id = req.get("id")
    if event_id is not None and not (isinstance(event_id, str) and 0 < len(event_id) <= 64):
        raise ControlError("BAD_FIELD", "event id must be a string of 1 to 64 characters")
    t_ns = req.get("t_ns")
    if t_ns is None:
        t_ns = time.time_ns()
    elif not isinstance(t_ns, int) or isinstance(t_ns, bool) or not 0 <= t_ns < 2**63:
        raise ControlError("BAD_FIELD", "t_ns must be an integer number of nanoseconds since the epoch")
    return {"kind": kind, "value": value, "note": note[:MAX_NOTE_CHARS], "id": event_id, "t_ns": t_ns}


def dumps(obj: Any) -> bytes:
    """JSON for the wire, never NaN: a non-finite number that slipped through is sent as null."""
    try:
        return json.dumps(obj, allow_nan=False).encode()
    except ValueError:
        return json.dumps(finite_json(obj), allow_nan=False).encode()


def block_result(folder: Path, rows: list[dict], block: int) -> dict:
    """A block's latest result row with its stored spectrum arrays; ControlError if it is not fitted."""
    mine = [r for r in rows if r.get("block") == block]
    if not mine:
        raise ControlError("NOT_FITTED", f"block {block} of session {folder.name!r} has not been fitted")
    result = dict(mine[-1])
    spec = read_block_spectrum(folder, block)
    if spec is not None:
        comps = spec.pop("components")
        result["spectrum"] = {**{k: v.tolist() for k, v in spec.items()},
                              "components": {n: c.tolist() for n, c in comps.items()}}
    return result
