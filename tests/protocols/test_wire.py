"""Wire protocol v1: every message type round-trips through frames; every malformed one is refused."""

import json
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.wire import WireError, decode, encode, encode_transient, ranges

START = dict(spectrometer_frequency_mhz=123.25, nucleus="1H", dwell_time_s=2.5e-4, points=64, coils=4,
             echo_time_s=0.03, repetition_time_s=2.0, sequence="PRESS", subject="sim001", session_code="ses-01",
             kit_code="KIT-0001", protocol="quick", start_time_ns=1_700_000_000_000_000_000)


def transient(seq=1, shape=(4, 64), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_every_scanner_type_round_trips():
    frames = encode("SESSION_START", "s1", 0, **START)
    msg = decode(frames)
    assert (msg.type, msg.session, msg.seq) == ("SESSION_START", "s1", 0)
    assert msg.header["coils"] == 4
    data = transient()
    msg = decode(encode_transient("s1", 5, data, t_ns=123, scan=7, flags=("water_ref",)))
    assert msg.type == "TRANSIENT" and msg.flags == {"water_ref"} and msg.header["scan"] == 7
    assert msg.payload.dtype == np.complex64 and np.array_equal(msg.payload, data)
    msg = decode(encode("EVENT", "s1", 6, t_ns=5, kind="vitals", value={"hr_bpm": 70}, note="ok"))
    assert msg.header["value"] == {"hr_bpm": 70}
    assert decode(encode("HEARTBEAT", "s1", 6)).type == "HEARTBEAT"
    assert decode(encode("SESSION_END", "s1", 7, t_ns=9)).seq == 7


def test_payload_is_little_endian_complex64_in_c_order():
    data = np.arange(8, dtype=np.float32).view(np.complex64).reshape(2, 2)
    frames = encode_transient("s", 1, data, t_ns=0)
    assert frames[1] == np.array([0, 1, 2, 3, 4, 5, 6, 7], "<f4").tobytes()
    assert json.loads(frames[0])["crc32"] == zlib.crc32(frames[1])


def _with(frames, **changes):
    h = json.loads(frames[0])
    for k, v in changes.items():
        if v is ...:
            h.pop(k)
        else:
            h[k] = v
    return [json.dumps(h).encode(), *frames[1:]]


@pytest.mark.parametrize("mutate, code", [
    (lambda f: f + [b"x"], "BAD_FRAMES"),
    (lambda f: [f[0]], "BAD_FRAMES"),                                  # TRANSIENT without payload
    (lambda f: [b"\xff\xfe", f[1]], "BAD_JSON"),
    (lambda f: [b"[1,2]", f[1]], "BAD_JSON"),
    (lambda f: [b'{"v": NaN}', f[1]], "BAD_JSON"),
    (lambda f: [b" " * 70000, f[1]], "BAD_JSON"),
    (lambda f: _with(f, v=2), "BAD_VERSION"),
    (lambda f: _with(f, v=...), "BAD_VERSION"),
    (lambda f: _with(f, type="ACK"), "BAD_TYPE"),
    (lambda f: _with(f, session="bad id!"), "BAD_SESSION_ID"),
    (lambda f: _with(f, session=""), "BAD_SESSION_ID"),
    (lambda f: _with(f, seq=-1), "BAD_FIELD"),
    (lambda f: _with(f, seq=2**64), "BAD_FIELD"),
    (lambda f: _with(f, seq=True), "BAD_FIELD"),
    (lambda f: _with(f, t_ns=...), "BAD_FIELD"),
    (lambda f: _with(f, flags=["bogus"]), "BAD_FIELD"),
    (lambda f: _with(f, dtype="complex128"), "BAD_DTYPE"),
    (lambda f: _with(f, shape=[4]), "BAD_SHAPE"),
    (lambda f: _with(f, shape=[4, 65]), "BAD_SHAPE"),
    (lambda f: [f[0], f[1][:-8]], "BAD_SHAPE"),
    (lambda f: _with(f, crc32=(json.loads(f[0])["crc32"] + 1) % 2**32), "BAD_CRC"),
])
def test_malformed_transient_is_refused_with_its_code(mutate, code):
    frames = encode_transient("s1", 3, transient(), t_ns=1)
    with pytest.raises(WireError) as err:
        decode(mutate(frames))
    assert err.value.code == code
    assert len(str(err.value)) > 10  # a sentence for a human


def test_nan_payload_is_refused():
    data = transient()
    data[1, 3] = np.nan
    with pytest.raises(WireError, match="NaN") as err:
        decode(encode_transient("s1", 3, data, t_ns=1))
    assert err.value.code == "NOT_FINITE"


def test_session_shape_mismatch_is_refused():
    with pytest.raises(WireError) as err:
        decode(encode_transient("s1", 3, transient(), t_ns=1), session_shape=(8, 64))
    assert err.value.code == "BAD_SHAPE"


@pytest.mark.parametrize("field, value", [("points", 8), ("coils", 0), ("dwell_time_s", -1.0),
                                          ("spectrometer_frequency_mhz", "123"), ("subject", ""),
                                          ("voxel_mm", [20, 20]), ("kit_code", ...)])
def test_bad_session_start_field_is_refused(field, value):
    frames = _with(encode("SESSION_START", "s1", 0, **START), **{field: value})
    with pytest.raises(WireError) as err:
        decode(frames)
    assert err.value.code == "BAD_FIELD" and field in str(err.value)


def test_error_echoes_session_and_seq_when_readable():
    with pytest.raises(WireError) as err:
        decode(_with(encode_transient("abc", 42, transient(), t_ns=1), dtype="x"))
    assert (err.value.session, err.value.seq) == ("abc", 42)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=0, max_size=4))
def test_decode_of_arbitrary_bytes_raises_only_wire_errors(frames):
    try:
        decode(frames)
    except WireError as err:
        assert err.code


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                           max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "type", "session", "seq", "t_ns", "scan", "flags", "dtype", "shape",
                                        "crc32", "kind", "points", "coils"]), json_values),
       st.one_of(st.none(), st.binary(max_size=64)))
def test_decode_of_arbitrary_headers_raises_only_wire_errors(header, payload):
    frames = [json.dumps(header).encode()] + ([payload] if payload is not None else [])
    try:
        decode(frames)
    except WireError as err:
        assert err.code


def test_ranges_groups_consecutive_numbers():
    assert ranges([5, 1, 2, 3, 9]) == [[1, 3], [5, 5], [9, 9]]
    assert ranges([]) == []
