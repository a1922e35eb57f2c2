"""Wire protocol v1: frame layout, encode/decode and strict validation (see protocols/SPEC.md).

Pure functions: `decode(frames)` turns raw ZeroMQ frames into a `Message` or raises `WireError` with a
reason code and a sentence; `encode_*` build frames. No sockets here, and never pickle.

Everything a peer sends is bounded before it is trusted: header size, JSON nesting depth, integer
length, finite numbers only (`parse_json`, shared with the control link), payload size, and the
session id's character set (`valid_session_id`). A decoded header holds only the fields this version
knows: extra fields are dropped here, so nothing downstream can store or publish them.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

VERSION = 1
MAX_HEADER_BYTES = 64 * 1024
MAX_JSON_DEPTH = 8              # the header object is depth 1, `voxel_mm` and an event's `value` depth 2
MAX_INT_DIGITS = 24             # 2^64 has 20 digits: longer integers are refused before they are converted
MAX_PAYLOAD_BYTES = 8 * 2**20   # coils x points x 8 of one transient, e.g. 64 coils x 16384 points
MAX_MESSAGE_BYTES = MAX_PAYLOAD_BYTES + 4096  # ZMQ_MAXMSGSIZE of the data link: any larger frame disconnects
MAX_SEQ = 2**64 - 1
MAX_SEQ_AHEAD = 65536           # a seq further than this beyond the agent's `upto` is refused (SEQ_TOO_FAR)
INITIAL_CREDIT = 32
PAYLOAD_DTYPE = "complex64"

SCANNER_TYPES = ("SESSION_START", "TRANSIENT", "EVENT", "HEARTBEAT", "SESSION_END")
AGENT_TYPES = ("ACK", "NACK", "CREDIT")
DATA_TYPES = ("SESSION_START", "TRANSIENT", "EVENT", "SESSION_END")  # take a sequence number
FLAGS = ("water_ref", "noise", "dummy")
FLAG_BITS = {"water_ref": 1, "noise": 2, "dummy": 4}
EVENT_KINDS = ("infusion_start", "infusion_stop", "infusion_pause", "infusion_resume", "pump_rate", "vitals",
               "rating", "pretreatment", "sequence_change", "shim", "motion", "note")
_SESSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # whole string (fullmatch): no '.', '..', '/'
# NACK codes after which the sender keeps the message and sends it again; every other code is final.
RETRY_CODES = frozenset({"STORE_FAILED", "UNKNOWN_SESSION", "GAP"})

# The fields each type may carry; anything else is dropped at decode (SPEC 2.1).
_COMMON_FIELDS = ("v", "type", "session", "seq")
START_FIELDS = ("spectrometer_frequency_mhz", "nucleus", "dwell_time_s", "points", "coils", "echo_time_s",
                "repetition_time_s", "sequence", "te1_s", "mixing_time_s", "voxel_mm", "subject", "session_code",
                "kit_code", "protocol", "start_time_ns", "field_strength_t")
KNOWN_FIELDS = {
    "SESSION_START": START_FIELDS,
    "TRANSIENT": ("scan", "t_ns", "flags", "dtype", "shape", "crc32"),
    "EVENT": ("t_ns", "kind", "value", "note"),
    "HEARTBEAT": (),
    "SESSION_END": ("t_ns", "reason"),
}


class WireError(ValueError):
    """A message refused; `code` is the NACK reason code, the message a sentence for a human."""

    def __init__(self, code: str, sentence: str, session: str = "", seq: int = -1, type_: str = ""):
        super().__init__(sentence)
        self.code = code
        self.session = session
        self.seq = seq
        self.type = type_  # the message's type when it could be read, else ""


@dataclass(frozen=True)
class Message:
    """A decoded, validated scanner-side message. `payload` is set for TRANSIENT only."""

    type: str
    session: str
    seq: int
    header: dict[str, Any]
    payload: np.ndarray | None = field(default=None, compare=False)

    @property
    def flags(self) -> frozenset[str]:
        return frozenset(self.header.get("flags", ()))


# ---------------------------------------------------------------- encoding

def _header_bytes(header: dict[str, Any]) -> bytes:
    return json.dumps(header, separators=(",", ":"), allow_nan=False).encode()


def encode(type_: str, session: str, seq: int, **fields: Any) -> list[bytes]:
    """Frames of a payload-free message."""
    return [_header_bytes({"v": VERSION, "type": type_, "session": session, "seq": seq, **fields})]


def encode_transient(session: str, seq: int, data: np.ndarray, t_ns: int, scan: int = 0,
                     flags: tuple[str, ...] | frozenset[str] = ()) -> list[bytes]:
    payload = np.ascontiguousarray(data, dtype="<c8")
    buf = payload.tobytes()
    header = {"v": VERSION, "type": "TRANSIENT", "session": session, "seq": seq, "scan": int(scan),
              "t_ns": int(t_ns), "flags": sorted(flags), "dtype": PAYLOAD_DTYPE,
              "shape": list(payload.shape), "crc32": zlib.crc32(buf)}
    return [_header_bytes(header), buf]


def encode_reply(type_: str, session: str, seq: int, **fields: Any) -> list[bytes]:
    """ACK / NACK / CREDIT from the agent."""
    return encode(type_, session, seq, **fields)


def decode_reply(frames: list[bytes]) -> dict[str, Any]:
    """An agent reply, for the sender: a bounded, finite JSON object of an agent type (else WireError)."""
    if not frames:
        raise WireError("BAD_FRAMES", "an empty reply")
    try:
        obj = parse_json(frames[0])
    except ValueError as exc:
        raise WireError("BAD_JSON", f"reply is not a JSON object: {exc}") from None
    if not isinstance(obj, dict) or obj.get("type") not in AGENT_TYPES:
        raise WireError("BAD_TYPE", f"not an agent reply: {str(obj)[:80]}")
    return obj


# ---------------------------------------------------------------- bounded JSON

def valid_session_id(session: Any) -> bool:
    """1-64 characters of letters, digits, '.', '_' and '-', starting with a letter or digit."""
    return isinstance(session, str) and _SESSION_RE.fullmatch(session) is not None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is not finite")
    return value


def _short_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise ValueError(f"integer with {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_depth(obj: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, {} or [] is 1), without recursion."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in node)
    return depth


def parse_json(raw: bytes | str, max_bytes: int = MAX_HEADER_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Strict JSON from a peer: at most `max_bytes`, UTF-8, nested at most `max_depth` deep, integers of at
    most MAX_INT_DIGITS digits, and only finite numbers (no NaN, Infinity or 1e400). ValueError otherwise."""
    if len(raw) > max_bytes:
        raise ValueError(f"{len(raw)} bytes, the limit is {max_bytes}")
    try:
        text = bytes(raw).decode("utf-8") if not isinstance(raw, str) else raw
        obj = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_short_int)
    except RecursionError:
        raise ValueError(f"nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8: {exc}") from None
    if json_depth(obj) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")
    return obj


def _finite_or_none(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def load_stored_json(text: str) -> Any:
    """JSON written by any version of the agent, for readers: NaN, Infinity and overflowing numbers
    (older versions could store them) become null, so nothing read back can fail to serialise again."""
    return json.loads(text, parse_constant=lambda _: None, parse_float=_finite_or_none)


# ---------------------------------------------------------------- decoding + validation

def decode(frames: list[bytes], session_shape: tuple[int, int] | None = None) -> Message:
    """Validate scanner-side frames. `session_shape` is (coils, points) of the session, when known."""
    if not 1 <= len(frames) <= 2:
        raise WireError("BAD_FRAMES", f"a message has one or two frames, this one has {len(frames)}")
    try:
        header = parse_json(frames[0])
    except ValueError as exc:
        raise WireError("BAD_JSON", f"header refused: {exc}") from None
    if not isinstance(header, dict):
        raise WireError("BAD_JSON", "header must be a JSON object")
    session = header.get("session") if valid_session_id(header.get("session")) else ""
    seq = header.get("seq") if _is_int(header.get("seq")) and 0 <= header["seq"] <= MAX_SEQ else -1

    type_ = header.get("type") if header.get("type") in SCANNER_TYPES else ""

    def fail(code: str, sentence: str) -> WireError:
        return WireError(code, sentence, session, seq, type_)

    if header.get("v") != VERSION or not _is_int(header.get("v")):
        raise fail("BAD_VERSION",
                   f"protocol version {header.get('v')!r} is not supported; this agent speaks v{VERSION}")
    if not type_:
        raise fail("BAD_TYPE", f"message type {str(header.get('type'))[:40]!r} is not one a scanner may send "
                               f"({', '.join(SCANNER_TYPES)})")
    if not valid_session_id(header.get("session")):
        raise fail("BAD_SESSION_ID", "session id must be 1-64 characters of letters, digits, '.', '_' or '-', "
                                     "starting with a letter or digit")
    if not _is_int(header.get("seq")) or not 0 <= header["seq"] <= MAX_SEQ:
        raise fail("BAD_FIELD", "seq must be an integer from 0 to 2^64-1")
    has_payload = len(frames) == 2
    if has_payload != (type_ == "TRANSIENT"):
        raise fail("BAD_FRAMES", "TRANSIENT needs exactly one payload frame; other types take none")
    for check in _CHECKS[type_]:
        problem = check(header)
        if problem:
            raise fail(*problem)
    payload = None
    if type_ == "TRANSIENT":
        payload = _check_payload(header, frames[1], session_shape, fail)
    known = {k: header[k] for k in (*_COMMON_FIELDS, *KNOWN_FIELDS[type_]) if k in header}
    return Message(type_, header["session"], int(header["seq"]), known, payload)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _need(header: dict, name: str, kind: str, lo: float | None = None, hi: float | None = None,
          optional: bool = False) -> tuple[str, str] | None:
    if name not in header or header[name] is None:
        return None if optional else ("BAD_FIELD", f"required field {name!r} is missing")
    v = header[name]
    ok = {"int": _is_int, "num": _is_num, "str": lambda x: isinstance(x, str) and 0 < len(x) <= 256}[kind](v)
    if not ok:
        want = {"str": "string", "int": "integer"}.get(kind, "finite number")
        return ("BAD_FIELD", f"field {name!r} must be a {want}, got {str(v)[:40]!r}")
    if lo is not None and v < lo or hi is not None and v > hi:
        return ("BAD_FIELD", f"field {name!r} = {v} is outside {lo}..{hi}")
    return None


def _checks_start(h: dict) -> tuple[str, str] | None:
    for args in (("spectrometer_frequency_mhz", "num", 1.0, 2000.0), ("nucleus", "str"),
                 ("dwell_time_s", "num", 1e-7, 1.0), ("points", "int", 16, 65536), ("coils", "int", 1, 256),
                 ("echo_time_s", "num", 0.0, 10.0), ("repetition_time_s", "num", 1e-3, 600.0),
                 ("sequence", "str"), ("subject", "str"), ("session_code", "str"), ("kit_code", "str"),
                 ("protocol", "str"), ("start_time_ns", "int", 0, 2**63 - 1)):
        p = _need(h, *args)
        if p:
            return p
    for args in (("te1_s", "num", 0.0, 10.0), ("mixing_time_s", "num", 0.0, 10.0),
                 ("field_strength_t", "num", 0.0, 50.0)):
        p = _need(h, *args, optional=True)
        if p:
            return p
    vox = h.get("voxel_mm")
    if vox is not None and not (isinstance(vox, list) and len(vox) == 3 and all(_is_num(x) and x > 0 for x in vox)):
        return ("BAD_FIELD", "voxel_mm must be a list of three positive numbers")
    if h["coils"] * h["points"] * 8 > MAX_PAYLOAD_BYTES:
        return ("BAD_FIELD", f"coils x points = {h['coils']} x {h['points']} makes transients of "
                             f"{h['coils'] * h['points'] * 8} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    return None


def _checks_transient(h: dict) -> tuple[str, str] | None:
    for args in (("t_ns", "int", 0, 2**63 - 1), ("scan", "int", 0, 2**63 - 1)):
        p = _need(h, *args)
        if p:
            return p
    flags = h.get("flags", [])
    if not isinstance(flags, list) or any(f not in FLAGS for f in flags):
        return ("BAD_FIELD", f"flags must be a list drawn from {', '.join(FLAGS)}")
    if h.get("dtype") != PAYLOAD_DTYPE:
        return ("BAD_DTYPE", f"dtype must be {PAYLOAD_DTYPE!r} (little-endian complex float32), got {h.get('dtype')!r}")
    shape = h.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(_is_int(x) and x > 0 for x in shape)):
        return ("BAD_SHAPE", "shape must be [coils, points] with positive integers")
    if not _is_int(h.get("crc32")) or not 0 <= h["crc32"] < 2**32:
        return ("BAD_FIELD", "crc32 must be an unsigned 32-bit integer")
    return None


def _checks_event(h: dict) -> tuple[str, str] | None:
    p = _need(h, "t_ns", "int", 0, 2**63 - 1)
    if p:
        return p
    if h.get("kind") not in EVENT_KINDS:
        return ("BAD_FIELD", f"event kind {h.get('kind')!r} is not one of {', '.join(EVENT_KINDS)}")
    if "value" in h and h["value"] is not None and not isinstance(h["value"], dict):
        return ("BAD_FIELD", "event value must be a JSON object")
    if "note" in h and not (isinstance(h["note"], str) and len(h["note"]) <= 4096):
        return ("BAD_FIELD", "event note must be a string of at most 4096 characters")
    return None


def _checks_end(h: dict) -> tuple[str, str] | None:
    return _need(h, "t_ns", "int", 0, 2**63 - 1) or _need(h, "reason", "str", optional=True)


_CHECKS = {"SESSION_START": (_checks_start,), "TRANSIENT": (_checks_transient,), "EVENT": (_checks_event,),
           "HEARTBEAT": (), "SESSION_END": (_checks_end,)}


def _check_payload(header: dict, buf: bytes, session_shape: tuple[int, int] | None, fail) -> np.ndarray:
    coils, points = header["shape"]
    if session_shape is not None and (coils, points) != tuple(session_shape):
        raise fail("BAD_SHAPE", f"shape {coils}x{points} differs from the session's "
                                f"{session_shape[0]} coils x {session_shape[1]} points")
    expected = coils * points * 8
    if len(buf) != expected:
        raise fail("BAD_SHAPE", f"payload has {len(buf)} bytes, shape {coils}x{points} complex64 needs {expected}")
    if zlib.crc32(buf) != header["crc32"]:
        raise fail("BAD_CRC", "payload crc32 does not match the header: the data were corrupted in transit")
    arr = np.frombuffer(buf, dtype="<c8").reshape(coils, points)
    if not np.isfinite(arr.view("<f4")).all():
        raise fail("NOT_FINITE", "payload holds NaN or infinite samples")
    return arr


def flags_to_bits(flags: frozenset[str] | list[str]) -> int:
    return sum(FLAG_BITS[f] for f in flags)


def bits_to_flags(bits: int) -> frozenset[str]:
    return frozenset(f for f, b in FLAG_BITS.items() if bits & b)


def missing_ranges(stored: Any, first: int, last: int, limit: int | None = None) -> list[list[int]]:
    """Inclusive [a, b] ranges of first..last not in `stored` (sorted, unique ints). The work grows with
    the number of stored seqs, never with the width of a gap (a seq may be 2^63)."""
    out: list[list[int]] = []
    nxt = first
    for s in stored:
        if s < nxt:
            continue
        if s > last:
            break
        if s > nxt:
            out.append([nxt, s - 1])
            if limit is not None and len(out) >= limit:
                return out
        nxt = s + 1
    if nxt <= last and (limit is None or len(out) < limit):
        out.append([nxt, last])
    return out


def ranges(seqs: list[int]) -> list[list[int]]:
    """Sorted integers as inclusive [first, last] ranges."""
    out: list[list[int]] = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out
