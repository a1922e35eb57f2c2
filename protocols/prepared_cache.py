"""The per-transient preprocessing cache of a session: `prepared.bin` (docs/session-format.md).

Every `mrs.pipeline.CacheRecord` the pipeline made, in processing order: state changes (coil weights,
eddy phase), combined water references, running references, and each metabolite transient aligned,
with its estimates. Refit feeds them back through `add_prepared` instead of redoing that work; the
pipeline resumes from them after a restart. The format is generic (a JSON head with the record's kind,
seq, time, scalar values and array layout, then the arrays' bytes), so a new stage or estimate needs no
change here. Derived data: written without fsync, always rebuildable from raw.log. Every record carries
a CRC, and reading stops at the first incomplete or corrupt record, so a torn tail is never trusted.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from mrs.pipeline.record import KINDS, CacheRecord
from protocols.wire import FLAG_BITS

log = logging.getLogger("mrsmon.prepared_cache")
CACHE_NAME = "prepared.bin"
FILE_MAGIC = b"MRSP"
FILE_VERSION = 2                                    # 1: fixed 64-byte records (before issue 13)
FILE_HEAD = struct.Struct("<4sHHI")                 # magic, version, reserved, meta JSON length
REC_MAGIC = b"PREC"
REC_HEAD = struct.Struct("<4sIII")                  # magic, JSON length, payload length, crc32


class CacheError(ValueError):
    """The cache file cannot be used (wrong format or settings)."""


# ------------------------------------------------------------------------------ encoding
def _meta_bytes(meta: dict) -> bytes:
    body = json.dumps(meta, sort_keys=True).encode()
    return FILE_HEAD.pack(FILE_MAGIC, FILE_VERSION, 0, len(body)) + body + struct.pack("<I", zlib.crc32(body))


def encode_record(rec: CacheRecord) -> bytes:
    if rec.kind not in KINDS:
        raise CacheError(f"unknown record kind {rec.kind!r}")
    arrays = {name: np.ascontiguousarray(a) for name, a in rec.arrays.items()}
    head = {"kind": rec.kind, "seq": int(rec.seq), "t_s": float(rec.t_s), "values": dict(rec.values),
            "arrays": [[name, a.dtype.newbyteorder("<").str, list(a.shape)] for name, a in arrays.items()]}
    body = json.dumps(head, separators=(",", ":")).encode()
    payload = b"".join(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes() for a in arrays.values())
    prefix = REC_HEAD.pack(REC_MAGIC, len(body), len(payload), 0)[:12]
    crc = zlib.crc32(payload, zlib.crc32(body, zlib.crc32(prefix)))
    return prefix + struct.pack("<I", crc) + body + payload


def _decode(body: bytes, payload: memoryview) -> CacheRecord:
    head = json.loads(body)
    arrays, offset = {}, 0
    for name, dtype, shape in head["arrays"]:
        dt = np.dtype(dtype)
        n = dt.itemsize * math.prod(shape)  # (not np.prod: ten times slower per call, on a 1800-record read)
        arrays[name] = np.frombuffer(payload[offset:offset + n], dt).reshape(shape)
        offset += n
    if head["kind"] not in KINDS or offset != len(payload):
        raise ValueError("record layout does not match its payload")
    return CacheRecord(head["kind"], int(head["seq"]), float(head["t_s"]), head["values"], arrays)


def read_cache(path: Path) -> tuple[dict | None, list[CacheRecord], int]:
    """(meta, records of the valid prefix, byte length of that prefix); meta None if the header is bad."""
    path = Path(path)
    if not path.exists():
        return None, [], 0
    buf = memoryview(path.read_bytes())
    if len(buf) < FILE_HEAD.size:
        return None, [], 0
    magic, version, _, n_meta = FILE_HEAD.unpack_from(buf)
    end = FILE_HEAD.size + n_meta + 4
    if magic != FILE_MAGIC or version != FILE_VERSION or len(buf) < end:
        return None, [], 0
    body = bytes(buf[FILE_HEAD.size:end - 4])
    if zlib.crc32(body) != struct.unpack_from("<I", buf, end - 4)[0]:
        return None, [], 0
    meta = json.loads(body)
    records: list[CacheRecord] = []
    offset = end
    while offset + REC_HEAD.size <= len(buf):
        magic, n_body, n_payload, crc = REC_HEAD.unpack_from(buf, offset)
        start = offset + REC_HEAD.size
        stop = start + n_body + n_payload
        if magic != REC_MAGIC or stop > len(buf):
            break
        rec_body, payload = bytes(buf[start:start + n_body]), buf[start + n_body:stop]
        if zlib.crc32(payload, zlib.crc32(rec_body, zlib.crc32(buf[offset:offset + 12]))) != crc:
            break
        try:
            records.append(_decode(rec_body, payload))
        except (ValueError, KeyError, TypeError, IndexError):
            break
        offset = stop
    return meta, records, offset


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
            self._f = open(self.path, "wb")
            self._f.write(_meta_bytes(meta))
            self._f.flush()

        self.error: OSError | None = None

    def write(self, rec: CacheRecord) -> None:
        """Append one record. A write error (disk full) stops the cache, never the processing: the
        file keeps a valid prefix, which a refit does not use and a restarted pipeline rebuilds on."""
        if self.error is not None:
            return
        try:
            self._f.write(encode_record(rec))
            self._f.flush()
        except OSError as exc:
            self.error = exc
            log.warning("preprocessing cache %s: %s; not written further", self.path, exc)

    def close(self) -> None:
        try:
            self._f.close()
        except OSError:
            pass


def write_new_cache(folder: Path, meta: dict, records: list[CacheRecord]) -> bool:
    """Write a whole cache unless one exists (an agent may be appending to it); False if one did."""
    final = Path(folder) / CACHE_NAME
    if final.exists():
        return False
    tmp = final.with_name(f".{CACHE_NAME}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(_meta_bytes(meta))
        for rec in records:
            f.write(encode_record(rec))
    try:
        os.link(tmp, final)  # never replaces: fails if someone created it meanwhile
        return True
    except OSError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def cache_meta(key: dict, coils: int, software: str) -> dict:
    return {"key": key, "coils": int(coils), "software": software}
