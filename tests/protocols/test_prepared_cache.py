"""The preprocessing cache file: any record round-trips exactly (the format names no fields); a torn or
corrupt tail is detected and never used."""

import json
import zlib

import numpy as np
import pytest

from mrs.pipeline import CacheRecord
from protocols import prepared_cache as prepcache


def _records(n=5, points=64, coils=3):
    rng = np.random.default_rng(1)
    out = [CacheRecord("state", arrays={"weights": rng.normal(size=coils) + 1j * rng.normal(size=coils),
                                        "eddy": rng.normal(size=points),
                                        "strided": np.arange(24.0).reshape(4, 6)[:, ::2].T}),  # not C-contiguous
           CacheRecord("water", 1, 0.5, arrays={"fid": rng.normal(size=points) + 1j}),
           CacheRecord("reference", values={"rebuild": False}, arrays={"fid": rng.normal(size=points) + 2j})]
    for i in range(n):
        fid = (rng.normal(size=points) + 1j * rng.normal(size=points)).astype(np.complex64)
        out.append(CacheRecord("transient", 2 + i, 2.0 * i,
                               {"freq_hz": 0.1 * i + 1e-13, "phase_deg": -3.0 * i,
                                "rejected": "motion" if i == 2 else None,
                                "residual_ratio": 1.0 + i, "lipid_ratio": float("nan") if i == 4 else 0.5 * i,
                                "a_new_estimate": i, "flag": i % 2 == 0},
                               {"fid": fid, "a_new_array": np.arange(i, dtype=np.int16).reshape(1, i)}))
    out.append(CacheRecord("error", 9, 20.0, {"rejected": "error: transient holds NaN or infinity"}))
    return out


def _write(path, records, meta=None):
    w = prepcache.CacheWriter(path, meta or prepcache.cache_meta({"version": 1}, 3, "test"))
    for r in records:
        w.write(r)
    w.close()


def _same(a, b):
    assert (a.kind, a.seq, a.t_s) == (b.kind, b.seq, b.t_s)
    np.testing.assert_equal(dict(a.values), dict(b.values))  # NaN equals NaN here
    assert [type(v) for v in a.values.values()] == [type(v) for v in b.values.values()]
    assert a.arrays.keys() == b.arrays.keys()
    for name, x in a.arrays.items():
        y = b.arrays[name]
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)


def test_records_round_trip_exactly(tmp_path):
    recs = _records()
    _write(tmp_path / "prepared.bin", recs)
    meta, back, end = prepcache.read_cache(tmp_path / "prepared.bin")
    assert meta["key"] == {"version": 1} and meta["coils"] == 3
    assert end == (tmp_path / "prepared.bin").stat().st_size
    assert len(back) == len(recs)
    for a, b in zip(recs, back, strict=True):
        _same(a, b)
    assert back[3].fid.dtype == np.complex64 and back[1].fid.dtype == np.complex128


@pytest.mark.parametrize("damage", ["cut", "flip"])
def test_a_torn_or_corrupt_tail_is_left_out(tmp_path, damage):
    recs = _records()
    path = tmp_path / "prepared.bin"
    _write(path, recs)
    _, _, full = prepcache.read_cache(path)
    data = bytearray(path.read_bytes())
    if damage == "cut":
        data = data[:-100]       # the last record half written (the error record is short: cut into the last FID)
    else:
        data[-200] ^= 0xFF       # a flipped byte in the last transient's FID
    path.write_bytes(bytes(data))
    meta, back, end = prepcache.read_cache(path)
    assert meta is not None and end < full
    assert [r.seq for r in back] == [r.seq for r in recs[:len(back)]]
    assert len(back) < len(recs) and back[-1].kind != "error"
    # appending after a crash cuts the torn tail first
    w = prepcache.CacheWriter(path, meta, keep_bytes=end)
    w.write(recs[-1])
    w.close()
    _, again, _ = prepcache.read_cache(path)
    assert [r.seq for r in again] == [r.seq for r in back] + [recs[-1].seq]


def test_a_bad_header_means_no_cache(tmp_path):
    path = tmp_path / "prepared.bin"
    _write(path, _records())
    data = bytearray(path.read_bytes())
    data[20] ^= 0x01  # inside the meta JSON: its CRC fails
    path.write_bytes(bytes(data))
    assert prepcache.read_cache(path) == (None, [], 0)
    path.write_bytes(b"MRS")
    assert prepcache.read_cache(path) == (None, [], 0)


def test_records_must_follow_raw_log_in_seq_order():
    recs = [CacheRecord("state", arrays={"weights": np.ones(2)}), CacheRecord("water", 2),
            CacheRecord("transient", 4), CacheRecord("transient", 5)]
    stored = {1, 2, 3, 4, 5, 6}
    assert prepcache.covered_prefix(recs, [2, 4, 5, 6], stored) == 3
    assert prepcache.covered_prefix(recs[:3] + [CacheRecord("transient", 6)], [2, 4, 5, 6], stored) is None
    assert prepcache.covered_prefix(recs + [CacheRecord("transient", 7)], [2, 4, 5, 6], stored) is None
    # an error record for a bad noise scan (seq 3) is not in the expected order but is allowed
    assert prepcache.covered_prefix(recs[:2] + [CacheRecord("error", 3)] + recs[2:], [2, 4, 5, 6], stored) == 3


def test_a_write_error_stops_the_cache_not_the_caller(tmp_path, monkeypatch):
    recs = _records()
    w = prepcache.CacheWriter(tmp_path / "prepared.bin", prepcache.cache_meta({"version": 1}, 3, "test"))
    for r in recs[:4]:
        w.write(r)

    def full(_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(w._f, "write", full)
    for r in recs[4:]:
        w.write(r)  # no exception
    assert w.error is not None and w.error.errno == 28
    w.close()
    _, back, _ = prepcache.read_cache(tmp_path / "prepared.bin")
    assert [r.kind for r in back] == [r.kind for r in recs[:4]]


def test_a_cache_of_another_format_version_is_not_read_and_is_replaced(tmp_path):
    """A cache written by older software (version 2: a JSON head per record) is derived data: it is not read,
    `usable` says why, and a whole-cache writer (refit) replaces it; a current cache is never replaced."""
    path = tmp_path / "prepared.bin"
    _write(path, _records())
    data = bytearray(path.read_bytes())
    assert int.from_bytes(data[4:6], "little") == prepcache.FILE_VERSION
    data[4:6] = (2).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    meta, back, end = prepcache.read_cache(path)
    assert (meta, back, end) == (None, [], 0)
    assert prepcache.usable(meta, back, {"version": 1}, None, complete=False) == (False, "no valid cache header")
    recs = _records(n=2)
    assert prepcache.write_new_cache(tmp_path, prepcache.cache_meta({"version": 1}, 3, "test"), recs)
    meta, back, _ = prepcache.read_cache(path)
    assert meta is not None and len(back) == len(recs)
    assert not prepcache.write_new_cache(tmp_path, prepcache.cache_meta({"version": 1}, 3, "test"), recs[:1])
    assert len(prepcache.read_cache(path)[1]) == len(recs)


def test_layouts_are_written_once_per_shape_and_redefined_after_an_append(tmp_path):
    """A data record carries no names: the layout record before it does, once per shape. A writer appending
    to an existing file starts its layout ids afresh; the reader uses the latest definition of an id."""
    recs = _records()
    path = tmp_path / "prepared.bin"
    _write(path, recs)
    data = path.read_bytes()
    assert data.count(prepcache.REC_MAGIC) == len(recs)
    shapes = {(r.kind, tuple((k, type(v), v if not isinstance(v, (bool, int, float)) else None)
                             for k, v in r.values.items()),
               tuple((k, a.dtype.str, a.shape) for k, a in r.arrays.items())) for r in recs}
    assert data.count(prepcache.LAYOUT_MAGIC) == len(shapes) < len(recs) + 1
    _, _, end = prepcache.read_cache(path)
    w = prepcache.CacheWriter(path, None, keep_bytes=end)
    extra = CacheRecord("reference", 50, 1.5, {"rebuild": True, "n": 3}, {"fid": np.arange(4, dtype=np.float32)})
    for r in (extra, recs[3]):
        w.write(r)
    w.close()
    _, back, _ = prepcache.read_cache(path)
    assert len(back) == len(recs) + 2
    for a, b in zip(recs + [extra, recs[3]], back, strict=True):
        _same(a, b)


def test_values_round_trip_bit_exactly(tmp_path):
    """Floats keep every bit (NaN payloads, signed zero, subnormals), ints keep 64 bits and beyond."""
    weird = {"neg_zero": -0.0, "tiny": 5e-324, "nan_payload": np.frombuffer(b"\x01\x00\x00\x00\x00\x00\xf8\x7f",
                                                                          np.float64)[0].item(),
             "inf": float("-inf"), "big": 2**63 - 1, "huger": 2**70, "neg": -2**63, "s": "é", "none": None,
             "false": False}
    enc = prepcache.RecordEncoder()
    blob = bytearray(prepcache._meta_bytes({"key": 1}))
    blob += enc.encode(CacheRecord("transient", 7, 0.1 + 0.2, weird, {"scalar": np.array(3.5)}))
    (tmp_path / "prepared.bin").write_bytes(bytes(blob))
    _, (back,), _ = prepcache.read_cache(tmp_path / "prepared.bin")
    assert back.t_s == 0.1 + 0.2 and back.arrays["scalar"].shape == () and back.arrays["scalar"] == 3.5
    for k, v in weird.items():
        got = back.values[k]
        assert type(got) is type(v), k
        if isinstance(v, float):
            assert np.float64(got).tobytes() == np.float64(v).tobytes(), k
        else:
            assert got == v, k


def _transients(n, rejected=lambda i: None, points=32, first_seq=10):
    """Metabolite transients as the pipeline writes them; `rejected(i)` (a constant of the layout) decides
    which layout each one has."""
    rng = np.random.default_rng(2)
    return [CacheRecord("transient", first_seq + i, 0.5 * i,
                        {"freq_hz": rng.normal(), "phase_deg": rng.normal(), "rejected": rejected(i),
                         "water_removed": i % 3 == 0, "n": i},
                        {"fid": (rng.normal(size=points) + 1j * rng.normal(size=points)).astype(np.complex64),
                         "zero_d": np.array(float(i)), "empty": np.zeros((2, 0))})
            for i in range(n)]


def _frame_starts(path):
    """Byte offset of each data record's frame."""
    data = path.read_bytes()
    offset = prepcache.FILE_HEAD.size + prepcache.FILE_HEAD.unpack_from(data)[3] + 4
    starts = []
    while offset < len(data):
        _, magic, n, _ = prepcache.REC_HEAD.unpack_from(data, offset)
        if magic == prepcache.REC_MAGIC:
            starts.append(offset)
        offset += prepcache.REC_HEAD.size + n
    return starts


def _runs_of_every_length(i):
    """Runs of 1, 2, 3... transients, accepted and rejected by turns: past `_SHORT_RUN` too."""
    k, start = 0, 0
    while start + k + 1 <= i:
        start, k = start + k + 1, k + 1
    return "motion" if k % 2 else None


@pytest.mark.parametrize("pattern", ["one layout", "every 10th rejected", "two reasons alternating",
                                     "runs of every length"])
def test_records_of_several_layouts_interleaved_round_trip(tmp_path, pattern):
    """Records are decoded a layout at a time and in runs of adjacent frames; whatever the interleaving,
    they come back exactly, in file order (with 0-d and empty arrays, and a reference between runs)."""
    reasons = {"one layout": lambda i: None,
               "every 10th rejected": lambda i: "motion" if i % 10 == 9 else None,
               "two reasons alternating": lambda i: ("motion", "lipid")[i % 2],
               "runs of every length": _runs_of_every_length}[pattern]
    recs = _transients(60, reasons)
    recs.insert(30, CacheRecord("reference", values={"rebuild": True}, arrays={"fid": np.ones(32, complex)}))
    path = tmp_path / "prepared.bin"
    _write(path, recs)
    meta, back, end = prepcache.read_cache(path)
    assert end == path.stat().st_size and len(back) == len(recs)
    for a, b in zip(recs, back, strict=True):
        _same(a, b)
    assert all(isinstance(r.seq, int) and isinstance(r.t_s, float) for r in back)
    assert all(not r.fid.flags.writeable for r in back if r.fid is not None)  # views of the file's bytes


@pytest.mark.parametrize("where", [3, 40])       # in a short run (checked frame by frame) and in a long one
@pytest.mark.parametrize("damage", ["fid byte", "magic", "layout id", "body length"])
def test_a_damaged_record_in_the_middle_ends_the_valid_prefix(tmp_path, where, damage):
    """Reading stops at the first damaged frame: the records before it are all read, none after it."""
    recs = _transients(60, lambda i: "motion" if i == 50 else None)
    path = tmp_path / "prepared.bin"
    _write(path, recs)
    frame = _frame_starts(path)[where]
    data = bytearray(path.read_bytes())
    at = {"fid byte": frame + 100, "magic": frame + 4, "layout id": frame + 12, "body length": frame + 8}[damage]
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    meta, back, end = prepcache.read_cache(path)
    assert meta is not None and end == frame and len(back) == where
    for a, b in zip(recs[:where], back, strict=True):
        _same(a, b)


@pytest.mark.parametrize("cut", [1, 50, -1])
def test_a_torn_last_record_of_a_long_run_is_left_out(tmp_path, cut):
    """The last record of a run of 40 half written (cut `cut` bytes into it, or one byte short): the 39
    before it are read, and the valid prefix ends where it starts."""
    recs = _transients(40)
    path = tmp_path / "prepared.bin"
    _write(path, recs)
    last = _frame_starts(path)[-1]
    data = path.read_bytes()
    path.write_bytes(data[:last + cut] if cut > 0 else data[:cut])
    meta, back, end = prepcache.read_cache(path)
    assert meta is not None and end == last and [r.seq for r in back] == [r.seq for r in recs[:-1]]


def test_many_makes_what_the_constructor_makes():
    values, arrays = [{"a": 1.5}, {}], [{"fid": np.zeros(2)}, {}]
    made = CacheRecord.many("transient", [4, 5], [0.5, 1.0], values, arrays)
    one_by_one = [CacheRecord("transient", s, t, v, a) for s, t, v, a in zip([4, 5], [0.5, 1.0], values, arrays)]
    for a, b in zip(made, one_by_one, strict=True):
        assert type(a) is CacheRecord and vars(a) == vars(b) and list(vars(a)) == list(vars(b))
        assert a.values is b.values and a.arrays is b.arrays
        with pytest.raises(AttributeError):
            a.seq = 9  # still frozen


@pytest.mark.parametrize("array", [["fid", "|O", [2]], ["fid", "<c8", [-1]], ["fid", "<c8", [1.5]],
                                   ["fid", "<x9", [2]]])
def test_a_layout_naming_an_impossible_array_ends_the_valid_prefix(tmp_path, array):
    """A layout frame with a valid crc that names no possible array (an object dtype, a negative or
    fractional size, an unknown dtype) is treated as damage, not decoded."""
    _assert_bad_layout_ends_the_prefix(tmp_path, json.dumps({"kind": "transient", "values": [],
                                                             "arrays": [array]}).encode())


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b"NaN", b"\xff\xfe", b"[1, 2]",
                                  b'{"kind": "transient", "values": "x", "arrays": 5}'])
def test_a_layout_that_is_no_layout_ends_the_valid_prefix(tmp_path, body):
    """Not a layout (nested past the parser's depth, not JSON, not an object): damage, no exception."""
    _assert_bad_layout_ends_the_prefix(tmp_path, body)


@pytest.mark.parametrize("meta", [b"[" * 100_000 + b"]" * 100_000, b"not json", b"[1, 2]"])
def test_a_header_that_is_no_json_object_means_no_cache(tmp_path, meta):
    path = tmp_path / "prepared.bin"
    path.write_bytes(prepcache.FILE_HEAD.pack(prepcache.FILE_MAGIC, prepcache.FILE_VERSION, 0, len(meta)) + meta
                     + zlib.crc32(meta).to_bytes(4, "little"))
    assert prepcache.read_cache(path) == (None, [], 0)


def _assert_bad_layout_ends_the_prefix(tmp_path, bad: bytes):
    recs = _transients(3)
    path = tmp_path / "prepared.bin"
    _write(path, recs)
    with open(path, "ab") as f:
        f.write(prepcache._frame(prepcache.LAYOUT_MAGIC, 7, bad) + prepcache._frame(prepcache.REC_MAGIC, 7, bytes(32)))
    size = path.stat().st_size
    meta, back, end = prepcache.read_cache(path)
    assert meta is not None and [r.seq for r in back] == [r.seq for r in recs] and end < size


def test_records_read_stay_valid_when_the_file_is_cut_appended_replaced_or_removed(tmp_path):
    """The reader maps the file: the records' arrays are views of the mapping, which they keep alive.
    The file is only ever cut beyond the valid prefix (a torn tail), appended to, replaced or removed:
    none of these changes a record already read."""
    recs = _transients(20)
    path = tmp_path / "prepared.bin"
    _write(path, recs)
    with open(path, "ab") as f:
        f.write(b"torn tail")
    meta, back, end = prepcache.read_cache(path)
    w = prepcache.CacheWriter(path, meta, keep_bytes=end)  # cuts the torn tail, appends
    w.write(_transients(1, first_seq=99)[0])
    w.close()
    path.replace(tmp_path / "moved.bin")
    _write(path, _transients(3, first_seq=500))
    (tmp_path / "moved.bin").unlink()
    path.unlink()
    for a, b in zip(recs, back, strict=True):
        _same(a, b)
    path.write_bytes(b"")
    assert prepcache.read_cache(path) == (None, [], 0)
    assert prepcache.read_cache(tmp_path / "absent.bin") == (None, [], 0)


def test_records_read_stay_valid_when_a_new_cache_is_started_at_the_same_path(tmp_path):
    """A new cache over an old one is a new file: cutting the mapped file to nothing would take the
    pages from under records already read (SIGBUS in the reading process, e.g. a display in review)."""
    recs = _transients(20)
    path = tmp_path / "prepared.bin"
    _write(path, recs)
    meta, back, _ = prepcache.read_cache(path)
    _write(path, _transients(2, first_seq=700))  # a restarted pipeline starting over
    for a, b in zip(recs, back, strict=True):
        _same(a, b)
    assert [r.seq for r in prepcache.read_cache(path)[1]] == [700, 701]
