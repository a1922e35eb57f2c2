"""Properties of the data and control decoders, fuzzed with hypothesis: whatever arrives, the decoder
either refuses it with a known code and a sentence, or returns something that is safe to store, publish
and serialise again (known fields only, finite numbers, a session id that names a folder inside the
sessions folder). Nothing else may come out, in particular no other exception."""

import json
import math
from pathlib import Path

from fuzz_messages import HOSTILE_IDS, HOSTILE_NUMBERS, NACK_CODES, START
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.control import CONTROL_OPS, ControlError, block_number, event_fields, parse_request, session_folder
from protocols.wire import (
    KNOWN_FIELDS,
    MAX_JSON_DEPTH,
    WireError,
    decode,
    encode,
    encode_transient,
    json_depth,
    parse_json,
    valid_session_id,
)

ROOT = Path("/nonexistent/sessions")
scalars = (st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80) | st.floats()
           | st.text(max_size=20))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                      max_leaves=12)
hostile_text = st.sampled_from(HOSTILE_NUMBERS) | st.builds(lambda d: "[" * d + "]" * d, st.integers(1, 3000))
field_names = st.sampled_from(sorted({k for ks in KNOWN_FIELDS.values() for k in ks} | {"v", "type", "session", "seq",
                                                                                        "x_extra", "value"}))


def _bases():
    import numpy as np

    return [encode("SESSION_START", "s1", 0, **START), encode("EVENT", "s1", 3, t_ns=5, kind="note", value={"a": 1}),
            encode("HEARTBEAT", "s1", 4), encode("SESSION_END", "s1", 5, t_ns=9),
            encode_transient("s1", 2, np.ones((1, 16), np.complex64), t_ns=1, scan=2)]


BASES = _bases()


def _finite(obj) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite(v) for v in obj)
    return True


def _check_decode(frames) -> None:
    try:
        msg = decode(frames)
    except WireError as err:
        assert err.code in NACK_CODES and len(str(err)) > 5
        assert err.session == "" or valid_session_id(err.session)
        return
    assert set(msg.header) <= {"v", "type", "session", "seq", *KNOWN_FIELDS[msg.type]}
    assert _finite(msg.header) and json_depth(msg.header) <= MAX_JSON_DEPTH
    json.dumps(msg.header, allow_nan=False)
    assert valid_session_id(msg.session) and (ROOT / msg.session).resolve().parent == ROOT.resolve()
    assert 0 <= msg.seq < 2**64


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(BASES) - 1), field_names, values)
def test_any_value_in_any_field_is_refused_or_safe(base, field, value):
    h = json.loads(BASES[base][0])
    h[field] = value
    try:
        raw = json.dumps(h).encode()  # NaN and Infinity are written as such: a hostile sender would
    except (ValueError, RecursionError):
        return
    _check_decode([raw, *BASES[base][1:]])


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(BASES) - 1), field_names,
       hostile_text | st.sampled_from([json.dumps(i) for i in HOSTILE_IDS]))
def test_hostile_json_text_in_any_field_is_refused_or_safe(base, field, text):
    h = json.loads(BASES[base][0])
    h[field] = "__HOLE__"
    raw = json.dumps(h).replace('"__HOLE__"', text, 1).encode(errors="surrogatepass")
    _check_decode([raw, *BASES[base][1:]])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=400), min_size=0, max_size=4))
def test_arbitrary_frames_are_refused_or_safe(frames):
    _check_decode(frames)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_a_session_id_is_valid_only_if_it_names_a_folder_inside_the_sessions_folder(sid):
    if valid_session_id(sid):
        assert "/" not in sid and "\n" not in sid and sid not in (".", "..") and len(sid) <= 64
        assert (ROOT / sid).resolve().parent == ROOT.resolve()


def _check_control(body: bytes) -> None:
    try:
        req = parse_request(body)
        assert req["op"] in CONTROL_OPS and _finite(req)
        if req["op"] == "event":
            fields = event_fields(req)
            json.dumps(fields, allow_nan=False)
            assert 0 <= fields["t_ns"] < 2**63 and len(fields["note"]) <= 500
        if req["op"] == "block":
            assert 0 <= block_number(req.get("block")) <= 1_000_000
        if "session" in req:
            session_folder(ROOT, req["session"])
    except ControlError as err:
        assert err.code and len(str(err)) > 5


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["op", "session", "block", "kind", "value", "note", "id", "t_ns"]), values)
       | st.fixed_dictionaries({"op": st.sampled_from(CONTROL_OPS)}, optional={
           "session": st.text(max_size=70) | st.sampled_from(HOSTILE_IDS), "block": values, "kind": values,
           "value": values, "note": values, "id": values, "t_ns": values}))
def test_any_control_request_is_refused_or_safe(req):
    try:
        body = json.dumps(req).encode()
    except (ValueError, RecursionError):
        return
    _check_control(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | hostile_text.map(str.encode))
def test_arbitrary_control_bytes_are_refused_or_safe(body):
    _check_control(body)


def test_parse_json_bounds_depth_integers_and_non_finite_numbers():
    for text in ("[" * 9 + "]" * 9, '{"a": 1e400}', '{"a": NaN}', '{"a": -Infinity}', "1" * 30, "[" * 100_000):
        try:
            parse_json(text.encode())
        except ValueError:
            continue
        raise AssertionError(f"accepted {text[:30]!r}")
    assert parse_json(b'{"a": [1, 2.5, {"b": null}]}') == {"a": [1, 2.5, {"b": None}]}
