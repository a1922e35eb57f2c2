"""Hostile messages for the data and control links, by class, from a seeded generator (used by the
socket fuzzer in tests/faults and by bench/bench_faults.py)."""

from __future__ import annotations

import json
import random
import zlib

import numpy as np

from protocols.wire import encode, encode_transient

NACK_CODES = {"BAD_FRAMES", "BAD_JSON", "BAD_VERSION", "BAD_TYPE", "BAD_FIELD", "BAD_SESSION_ID", "BAD_DTYPE",
              "BAD_SHAPE", "BAD_CRC", "NOT_FINITE", "UNKNOWN_SESSION", "SESSION_CONFLICT", "AFTER_END", "GAP",
              "STORE_FAILED", "SEQ_TOO_FAR"}
START = dict(spectrometer_frequency_mhz=123.25, nucleus="1H", dwell_time_s=2.5e-4, points=16, coils=1,
             echo_time_s=0.03, repetition_time_s=2.0, sequence="PRESS", subject="fuzz01", session_code="ses-01",
             kit_code="KIT-0001", protocol="quick", start_time_ns=1_000_000_000)
HOSTILE_IDS = ["..", ".", "../x", "a/b", "/etc", "abc\n", "x\x00y", "-lead", ".hidden", "a" * 65, "", " ", "é",
               "con\\x"]
HOSTILE_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 30, "9" * 400,
                   str(2**63), str(2**64), str(2**64 - 1), "-1", "0.5", "1e-400"]
DATA_CLASSES = ("bytes", "field", "number", "nested", "seq", "session_id", "extra", "payload", "frames")
CONTROL_CLASSES = ("bytes", "field", "number", "nested", "session_id", "block")


def _nested(rng: random.Random, deepest: int = 20_000) -> str:
    depth = rng.choice([d for d in (9, 20, 100, 1000, 20_000) if d <= deepest])
    open_, close = rng.choice([("[", "]"), ('{"a":', "}")])
    return open_ * depth + "1" + close * depth


def _random_value(rng: random.Random, deepest: int = 20_000) -> str:
    """A JSON text: hostile numbers and nesting as text, so NaN and 1e400 reach the wire as written."""
    kind = rng.randrange(8)
    if kind == 0:
        return rng.choice(HOSTILE_NUMBERS)
    if kind == 1:
        return _nested(rng, deepest)
    if kind == 2:
        return json.dumps(rng.choice(HOSTILE_IDS))
    if kind == 3:
        return json.dumps("x" * rng.choice([0, 1, 300, 5000]))
    if kind == 4:
        return rng.choice(["null", "true", "false", "[]", "{}", '[1, 2]', '{"ml_per_h": 30}'])
    if kind == 5:
        return str(rng.randint(-2**70, 2**70))
    if kind == 6:
        return repr(rng.uniform(-1e6, 1e6))
    return json.dumps([rng.random() for _ in range(rng.randint(0, 5))])


def _header_text(header: dict, key: str, value_text: str) -> bytes:
    """The header as JSON with `key` set to the raw JSON text `value_text`."""
    h = dict(header)
    h[key] = "__HOLE__"
    return json.dumps(h).replace('"__HOLE__"', value_text, 1).encode(errors="surrogatepass")


def _valid(rng: random.Random, sid: str, seq: int) -> list[bytes]:
    t = rng.randrange(5)
    if t == 0:
        return encode("SESSION_START", sid, 0, **START)
    if t == 1:
        data = np.ones((1, 16), np.complex64)
        return encode_transient(sid, seq, data, t_ns=1, scan=seq)
    if t == 2:
        return encode("EVENT", sid, seq, t_ns=5, kind="note", value={"x": 1}, note="n")
    if t == 3:
        return encode("HEARTBEAT", sid, seq)
    return encode("SESSION_END", sid, seq, t_ns=9)


def data_message(rng: random.Random, cls: str, sid: str = "fuzz", seq_hi: int = 100) -> list[bytes]:
    """One hostile message of class `cls` for the data link."""
    seq = rng.randint(1, seq_hi)
    if cls == "bytes":  # (a message has at least one frame: ZeroMQ sends no empty message)
        return [rng.randbytes(rng.randint(0, 300)) for _ in range(rng.randint(1, 3))]
    if cls == "frames":  # frame count and payload placement
        base = _valid(rng, sid, seq)
        return rng.choice([base + [b"x"], base[:1] if len(base) == 2 else base + [b"p"], base * 2, [b""]])
    base = _valid(rng, sid, seq)
    header = json.loads(base[0])
    rest = base[1:]
    if cls == "field":
        key = rng.choice(list(header))
        return [_header_text(header, key, _random_value(rng)), *rest]
    if cls == "number":
        key = rng.choice([k for k, v in header.items() if isinstance(v, int | float) and not isinstance(v, bool)]
                         or ["seq"])
        return [_header_text(header, key, rng.choice(HOSTILE_NUMBERS)), *rest]
    if cls == "nested":
        return [_header_text(header, rng.choice([*header, "value", "x_extra"]), _nested(rng)), *rest]
    if cls == "seq":
        value = rng.choice([2**40, 2**62, 2**63, 2**64 - 1, 2**64, -1, 65_537, 10**30])
        return [_header_text(header, "seq", str(value)), *rest]
    if cls == "session_id":
        return [_header_text(header, "session", json.dumps(rng.choice(HOSTILE_IDS))), *rest]
    if cls == "extra":
        h = dict(header, **{f"x{rng.randrange(100)}": rng.random(), "patient_name": "Jane Doe"})
        return [_header_text(h, "zz_extra", _random_value(rng)), *rest]
    if cls == "payload":
        data = np.ones((1, 16), np.complex64)
        variant = rng.randrange(4)
        if variant == 0:
            data[0, 0] = np.nan
        frames = encode_transient(sid, seq, data, t_ns=1, scan=seq)
        h = json.loads(frames[0])
        if variant == 1:
            h["crc32"] = (h["crc32"] + 1) % 2**32
        elif variant == 2:
            h["shape"] = [2, 16]
        elif variant == 3:
            frames[1] = frames[1][:-8]
            h["crc32"] = zlib.crc32(frames[1])
        return [json.dumps(h).encode(), frames[1]]
    raise ValueError(cls)


def control_request(rng: random.Random, cls: str) -> bytes:
    """One hostile control request of class `cls`, under the control link's 64 KiB limit."""
    op = rng.choice(["ping", "snapshot", "event", "block", "nope", ""])
    req: dict = {"op": op}
    if cls == "bytes":
        return rng.randbytes(rng.randint(0, 300))
    if cls == "field":
        req.update({"kind": rng.choice(["note", "vitals", "bogus"]), "session": rng.choice(["fuzz", "nope"])})
        return _header_text(req, rng.choice(["value", "note", "id", "t_ns", "kind", "op"]),
                            _random_value(rng, deepest=1000))
    if cls == "number":
        return _header_text({"op": "event", "kind": "note"}, rng.choice(["t_ns", "value", "id"]),
                            rng.choice(HOSTILE_NUMBERS))
    if cls == "nested":
        return _header_text(req, rng.choice(["value", "session", "block"]), _nested(rng, deepest=1000))
    if cls == "session_id":
        return _header_text({"op": rng.choice(["snapshot", "block"]), "block": 0}, "session",
                            json.dumps(rng.choice(HOSTILE_IDS)))
    if cls == "block":
        return _header_text({"op": "block", "session": "fuzz"}, "block",
                            rng.choice([*HOSTILE_NUMBERS, '"3"', "true", "1.5", "-3", "0"]))
    raise ValueError(cls)
