"""The per-transient preprocessing cache of a session: `prepared.bin` (docs/session-format.md).

Every `mrs.pipeline.CacheRecord` the pipeline made, in processing order: state changes (coil weights,
eddy phase), combined water references, running references, and each metabolite transient aligned,
with its estimates. Refit feeds them back through `add_prepared` instead of redoing that work; the
pipeline resumes from them after a restart. The format is generic, so a new stage or estimate needs no
change here: a small JSON *layout* record, written once per record shape, names the kind, the values
(each with a type code; a string or None is a constant of the layout) and the arrays' dtypes and shapes;
each data record then holds only its layout id, seq, time, the values packed in binary (float64 bit for
bit, int64, bool) and the arrays' bytes. Reading decodes each layout's records at once (the scalars one
numpy gather, the arrays views of the file's bytes) and checks a long run of adjacent records of one
layout at once, so a record costs no struct or numpy call of its own (measured against format 2 and
format 1: bench/results/cache_read_vs_main.txt, cache_read_vs_d1652d8.txt).
Derived data: written without fsync, always rebuildable from raw.log; a cache of another format version
is not read and is rebuilt.
Every record carries a CRC, and reading stops at the first incomplete or corrupt record, so a torn tail
is never trusted.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import mmap
import operator
import os
import struct
import zlib
from itertools import islice, repeat
from pathlib import Path

import numpy as np

from mrs.pipeline.record import KINDS, CacheRecord
from protocols.wire import FLAG_BITS

log = logging.getLogger("mrsmon.prepared_cache")
CACHE_NAME = "prepared.bin"
FILE_MAGIC = b"MRSP"
FILE_VERSION = 3          # 1: fixed 64-byte records (before issue 13); 2: a JSON head per record
FILE_HEAD = struct.Struct("<4sHHI")                 # magic, version, reserved, meta JSON length
REC_MAGIC = b"PREC"                                 # a record: seq, t_s, packed values, arrays
LAYOUT_MAGIC = b"PLAY"                              # a layout: JSON of a record shape
REC_HEAD = struct.Struct("<I4sII")                  # crc32 of what follows it, magic, body length, layout id


class CacheError(ValueError):
    """The cache file cannot be used (wrong format or settings)."""


# ------------------------------------------------------------------------------ encoding
def _meta_bytes(meta: dict) -> bytes:
    body = json.dumps(meta, sort_keys=True).encode()
    return FILE_HEAD.pack(FILE_MAGIC, FILE_VERSION, 0, len(body)) + body + struct.pack("<I", zlib.crc32(body))


def _value_code(value) -> str:
    """How a scalar is packed: bool, int64 and float64 in binary; anything else (a string, None, an int
    beyond 64 bits) is a constant of the layout, so a new value of it makes a new layout."""
    if isinstance(value, bool):
        return "?"
    if isinstance(value, int) and -2**63 <= value < 2**63:
        return "q"
    if isinstance(value, float):
        return "d"
    return "c"


def _frame(magic: bytes, layout_id: int, body: bytes) -> bytes:
    head = REC_HEAD.pack(0, magic, len(body), layout_id)[4:]
    return struct.pack("<I", zlib.crc32(body, zlib.crc32(head))) + head + body


class RecordEncoder:
    """Encodes records, writing a layout record before the first record of each new shape. Layout ids
    count from 0 per encoder; a later layout record with the same id replaces the earlier one, so an
    encoder appending to an existing file needs to know nothing of the layouts already in it."""

    def __init__(self) -> None:
        self._ids: dict[tuple, int] = {}

    def encode(self, rec: CacheRecord) -> bytes:
        if rec.kind not in KINDS:
            raise CacheError(f"unknown record kind {rec.kind!r}")
        arrays = [(name, np.asarray(a)) for name, a in rec.arrays.items()]  # (tobytes: C order; 0-d kept)
        for name, a in arrays:
            if a.dtype.hasobject:
                raise CacheError(f"array {name!r} holds Python objects")
        codes = [(name, _value_code(v)) for name, v in rec.values.items()]
        values = [[name, code, rec.values[name]] if code == "c" else [name, code] for name, code in codes]
        layout = {"kind": rec.kind, "values": values,
                  "arrays": [[name, a.dtype.newbyteorder("<").str, list(a.shape)] for name, a in arrays]}
        key = json.dumps(layout, separators=(",", ":"))
        packed = [rec.values[name] for name, code in codes if code != "c"]
        body = struct.pack("<qd" + "".join(c for _, c in codes if c != "c"), int(rec.seq), float(rec.t_s), *packed)
        body += b"".join(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes() for _, a in arrays)
        layout_id = self._ids.get(key)
        if layout_id is not None:
            return _frame(REC_MAGIC, layout_id, body)
        layout_id = self._ids[key] = len(self._ids)  # (only once the record encoded)
        return _frame(LAYOUT_MAGIC, layout_id, key.encode()) + _frame(REC_MAGIC, layout_id, body)


class _Layout:
    """A decoded layout: the numpy dtype of seq, t_s and the packed values, and where each array lies.
    It checks a long *run* of its records (adjacent frames of this layout, such as the transients between
    two references) at once, and decodes all its records of a file at once: the scalars one numpy gather,
    the arrays strided views of the buffer, so a record costs no struct or numpy call of its own."""

    def __init__(self, body: bytes, layout_id: int) -> None:
        spec = json.loads(body)
        self.kind, self.id = spec["kind"], layout_id
        if self.kind not in KINDS:
            raise ValueError(f"unknown record kind {self.kind!r}")
        entries = spec["values"]
        packed = [e for e in entries if e[1] != "c"]
        self.scalars = np.dtype([("seq", "<i8"), ("t_s", "<f8")]
                                + [(f"v{i}", _DTYPE_OF_CODE[e[1]]) for i, e in enumerate(packed)])
        self.packed_fields = list(self.scalars.names[2:])
        self.names = [e[0] for e in entries]                       # the values in the written order
        self.constants = tuple(e[2] for e in entries if e[1] == "c")
        # decoded as the packed values then the constants: put back in the written order
        source = [i for i, e in enumerate(entries) if e[1] != "c"] + [i for i, e in enumerate(entries) if e[1] == "c"]
        self.order = operator.itemgetter(*sorted(range(len(source)), key=source.__getitem__)) if packed \
            and self.constants else None
        self.arrays, offset = [], self.scalars.itemsize
        for name, dtype, shape in spec["arrays"]:
            dt, shape = np.dtype(dtype), tuple(shape)
            if dt.hasobject or not all(type(d) is int and d >= 0 for d in shape):
                raise ValueError(f"array {name!r}: no array of dtype {dtype} and shape {shape}")
            count = math.prod(shape)  # (not np.prod: ten times slower per call)
            strides = tuple(dt.itemsize * math.prod(shape[i + 1:]) for i in range(len(shape)))  # C order
            self.arrays.append((name, dt, count, offset, shape, strides))
            offset += dt.itemsize * count
        self.size = offset
        self.frame = REC_HEAD.size + offset

    def long_run(self, buf: bytes, begin: int) -> int:
        """How many valid frames of this layout follow each other from `begin`: the heads compared a
        growing window at a time, then all their crcs in one pass (no Python step per frame)."""
        frame = self.frame
        whole, n, window = (len(buf) - begin) // frame, 0, _SHORT_RUN
        while n < whole:
            heads = np.ndarray(min(window, whole - n), _HEAD, buf, begin + n * frame, (frame,))
            same = (heads["magic"] == REC_MAGIC) & (heads["size"] == self.size) & (heads["layout"] == self.id)
            if not same.all():
                n += int(np.argmin(same))
                break
            n, window = n + len(heads), window * 8
        view = memoryview(buf)  # (its slices are no copies)
        crcs = map(zlib.crc32, map(view.__getitem__, map(slice, range(begin + 4, begin + n * frame, frame),
                                                          range(begin + frame, begin + (n + 1) * frame, frame))))
        good = np.fromiter(crcs, np.uint32, n) == np.ndarray(n, _HEAD, buf, begin, (frame,))["crc"]
        return n if good.all() else int(np.argmin(good))

    def decode(self, buf: bytes, runs: list[tuple[int, int]]) -> list[CacheRecord]:
        """The records of `runs` (first frame, count; in file order), in that order."""
        counts = [n for _, n in runs]
        total, frame = sum(counts), self.frame
        run_starts = np.cumsum(counts) - counts
        bodies = (np.repeat([first + REC_HEAD.size for first, _ in runs], counts)
                  + frame * (np.arange(total) - np.repeat(run_starts, counts)))
        scalars = np.frombuffer(buf, np.uint8)[bodies[:, None] + np.arange(self.scalars.itemsize)]
        scalars = scalars.view(self.scalars)[:, 0]
        if not self.packed_fields:
            values = [dict(zip(self.names, self.constants)) for _ in range(total)]
        else:
            rows = scalars[self.packed_fields].tolist()
            if self.order is not None:
                rows = map(self.order, map(operator.add, rows, repeat(self.constants)))
            values = list(map(dict, map(zip, repeat(self.names), rows)))
        columns = [self._array_column(buf, runs, total, *spec) for spec in self.arrays]
        arrays = list(map(dict, map(zip, repeat([spec[0] for spec in self.arrays]), zip(*columns)))) if columns \
            else [{} for _ in range(total)]
        return CacheRecord.many(self.kind, scalars["seq"].tolist(), scalars["t_s"].tolist(), values, arrays)

    def _array_column(self, buf: bytes, runs: list[tuple[int, int]], total: int, name: str, dt: np.dtype,
                      count: int, offset: int, shape: tuple, strides: tuple) -> list[np.ndarray]:
        """One array of each record of `runs`: read-only views of `buf`, one strided view per run."""
        if not count:  # (an empty array owns its own: a view may not start at the buffer's end)
            return [np.empty(shape, dt) for _ in range(total)]
        column: list[np.ndarray] = []
        for first, n in runs:
            view = np.ndarray((n, *shape), dt, buf, first + REC_HEAD.size + offset, (self.frame, *strides))
            column.extend(view if shape else (view[i, ...] for i in range(n)))  # (0-d stays a 0-d array)
        return column


_SHORT_RUN = 8  # frames of one layout checked one by one before the rest of the run is checked at once
_DTYPE_OF_CODE = {"?": "?", "q": "<i8", "d": "<f8"}
_HEAD = np.dtype([("crc", "<u4"), ("magic", "S4"), ("size", "<u4"), ("layout", "<u4")])  # REC_HEAD
assert _HEAD.itemsize == REC_HEAD.size


def read_cache(path: Path) -> tuple[dict | None, list[CacheRecord], int]:
    """(meta, records of the valid prefix, byte length of that prefix); meta None if the header is bad
    (another version among them: the cache is then rebuilt)."""
    enabled = gc.isenabled()
    gc.disable()  # thousands of new dicts, no cycles: in a process full of objects (a refit) the cyclic
    try:          # collector's passes cost as much as the decoding
        return _read_cache(Path(path))
    finally:
        if enabled:
            gc.enable()


def _read_cache(path: Path) -> tuple[dict | None, list[CacheRecord], int]:
    buf = _map(path)
    if buf is None or len(buf) < FILE_HEAD.size:
        return None, [], 0
    magic, version, _, n_meta = FILE_HEAD.unpack_from(buf)
    end = FILE_HEAD.size + n_meta + 4
    if magic != FILE_MAGIC or version != FILE_VERSION or len(buf) < end:
        return None, [], 0
    body = buf[FILE_HEAD.size:end - 4]
    if zlib.crc32(body) != struct.unpack_from("<I", buf, end - 4)[0]:
        return None, [], 0
    try:  # (crc-checked, yet a file is input: anything but a JSON object means no header)
        meta = json.loads(bytes(body))
    except (ValueError, RecursionError):
        return None, [], 0
    if not isinstance(meta, dict):
        return None, [], 0
    records, valid_end = _read_frames(buf, end)
    return meta, records, valid_end


def _map(path: Path) -> mmap.mmap | None:
    """The file mapped read-only (None if absent or empty). Mapped, not read: its pages are the page
    cache's, so a read neither copies nor zero-fills 10 MB of fresh memory (read_bytes took 6-7.6 ms of
    each of a process's first two reads of the bench session, 1.5 ms later ones). The records' arrays are
    views of the mapping and keep it alive; the file is only ever cut beyond the valid prefix (by the
    pipeline, before appending), never under a record, as raw.log's mapping in SessionReader."""
    try:
        with open(path, "rb") as f:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        return None
    except ValueError:  # an empty file cannot be mapped
        return None


def _read_frames(buf: bytes, offset: int) -> tuple[list[CacheRecord], int]:
    """The records of the frames from `offset` to the first incomplete or corrupt one, and where that is.
    Frame by frame, except that once a run of one layout is `_SHORT_RUN` long its rest is checked at
    once; then each layout decodes all its runs at once."""
    runs: list[list] = []                   # [layout, first frame, count]
    run: list | None = None                 # the run the last frame belongs to
    layouts: dict[int, _Layout] = {}
    view, size, head_size = memoryview(buf), len(buf), REC_HEAD.size
    while offset + head_size <= size:
        crc, magic, n, layout_id = REC_HEAD.unpack_from(buf, offset)
        stop = offset + head_size + n
        if stop > size or zlib.crc32(view[offset + 4:stop]) != crc:
            break
        if magic == LAYOUT_MAGIC:
            try:
                layouts[layout_id] = _Layout(buf[offset + head_size:stop], layout_id)
            except (ValueError, KeyError, TypeError, IndexError, RecursionError):
                break
            offset, run = stop, None
            continue
        layout = layouts.get(layout_id)
        if magic != REC_MAGIC or layout is None or n != layout.size:
            break
        if run is not None and run[0] is layout:
            run[2] += 1
        else:
            run = [layout, offset, 1]
            runs.append(run)
        offset = stop
        if run[2] == _SHORT_RUN:
            more = layout.long_run(buf, offset)
            run[2], offset = run[2] + more, offset + more * layout.frame
    by_layout: dict[_Layout, list[tuple[int, int]]] = {}
    for layout, first, count in runs:
        by_layout.setdefault(layout, []).append((first, count))
    decoded = {layout: iter(layout.decode(buf, its_runs)) for layout, its_runs in by_layout.items()}
    records: list[CacheRecord] = []
    for layout, _, count in runs:  # back in file order
        records.extend(islice(decoded[layout], count))
    return records, offset


# ------------------------------------------------------------------------------ matching raw.log
def expected_seqs(reader) -> list[int]:
    """Seqs that leave a record, in the order the processor sees them (raw.log in seq order):
    water references and metabolite transients (noise and dummy scans leave none)."""
    flags = reader.index["flags"]
    keep = (flags & (FLAG_BITS["noise"] | FLAG_BITS["dummy"])) == 0
    return [int(s) for s in reader.index["seq"][keep]]


def covered_prefix(records: list[CacheRecord], expected: list[int], stored: set[int]) -> int | None:
    """How many of `expected` the records cover, in order; None if they disagree with raw.log (another
    order, seqs not stored): then the cache describes other processing and must not be used."""
    seqs = [r.seq for r in records if r.kind in ("water", "transient", "error")]
    if any(s not in stored for s in seqs):
        return None
    allowed = set(expected)
    seqs = [s for s in seqs if s in allowed]  # (an error record may be for a bad noise/dummy scan)
    if seqs != expected[:len(seqs)]:
        return None
    return len(seqs)


def usable(meta: dict | None, records: list[CacheRecord], key: dict, reader,
           complete: bool) -> tuple[bool, str]:
    """Whether the cache can stand in for raw.log, and why not."""
    if meta is None:
        return False, "no valid cache header"
    if meta.get("key") != json.loads(json.dumps(key)):
        return False, "made with other preprocessing settings or code version"
    expected = expected_seqs(reader)
    n = covered_prefix(records, expected, {int(s) for s in reader.index["seq"]})
    if n is None:
        return False, "records do not follow raw.log in seq order"
    if complete and n < len(expected):
        return False, f"covers {n} of {len(expected)} transients"
    return True, "ok"


# ------------------------------------------------------------------------------ writing
class CacheWriter:
    """Appends records (buffered, flushed per record, never fsynced: derived data)."""

    def __init__(self, path: Path, meta: dict, keep_bytes: int | None = None) -> None:
        """A new file, or, with `keep_bytes`, the existing one cut to that valid prefix."""
        self.path = Path(path)
        if keep_bytes:
            self._f = open(self.path, "r+b")
            self._f.truncate(keep_bytes)
            self._f.seek(keep_bytes)
        else:
            # a new inode, not the old file cut to nothing: a reader's records are views of its
            # mapping, and a mapped page cut from under them would kill that process (SIGBUS)
            self.path.unlink(missing_ok=True)
            self._f = open(self.path, "wb")
            self._f.write(_meta_bytes(meta))
            self._f.flush()
        self._encoder = RecordEncoder()  # appending: its layout records redefine ids from 0
        self.error: OSError | None = None

    def write(self, rec: CacheRecord) -> None:
        """Append one record. A write error (disk full) stops the cache, never the processing: the
        file keeps a valid prefix, which a refit does not use and a restarted pipeline rebuilds on."""
        if self.error is not None:
            return
        try:
            self._f.write(self._encoder.encode(rec))
            self._f.flush()
        except OSError as exc:
            self.error = exc
            log.warning("preprocessing cache %s: %s; not written further", self.path, exc)

    def close(self) -> None:
        try:
            self._f.close()
        except OSError:
            pass


def of_other_version(path: Path) -> bool:
    """Whether `path` holds a cache of another format version (older software's: never read, replaced)."""
    try:
        with open(path, "rb") as f:
            head = f.read(FILE_HEAD.size)
    except OSError:
        return False
    return len(head) == FILE_HEAD.size and head[:4] == FILE_MAGIC and FILE_HEAD.unpack(head)[1] != FILE_VERSION


OTHER_VERSION = "a cache of another format version (rebuilt)"


def write_new_cache(folder: Path, meta: dict, records: list[CacheRecord]) -> bool:
    """Write a whole cache unless a current one exists (an agent may be appending to it); False if one did.
    A cache of another format version is replaced."""
    final = Path(folder) / CACHE_NAME
    replace = of_other_version(final)
    if final.exists() and not replace:
        return False
    tmp = final.with_name(f".{CACHE_NAME}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(_meta_bytes(meta))
        encoder = RecordEncoder()
        for rec in records:
            f.write(encoder.encode(rec))
    try:
        if replace:
            os.replace(tmp, final)
        else:
            os.link(tmp, final)  # never replaces: fails if someone created it meanwhile
        return True
    except OSError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def cache_meta(key: dict, coils: int, software: str) -> dict:
    return {"key": key, "coils": int(coils), "software": software}
