"""The per-transient preprocessing cache of a session: `prepared.bin` (docs/session-format.md).

What `mrs.pipeline.BlockProcessor` computed per transient (coil weights, combined water reference,
running references, and each metabolite transient combined + eddy-corrected + aligned, with its
shift, phase and rejection reason), in processing order. Refit feeds it back through `add_prepared`
instead of redoing that work; the pipeline resumes from it after a restart. Derived data: written
without fsync, always rebuildable from raw.log. Every record carries a CRC, and reading stops at the
first incomplete or corrupt record, so a torn tail after a crash is never trusted.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from mrs.pipeline import PreparedRecord
from protocols.wire import FLAG_BITS

log = logging.getLogger("mrsmon.prepared_cache")
CACHE_NAME = "prepared.bin"
FILE_MAGIC = b"MRSP"
FILE_VERSION = 1
FILE_HEAD = struct.Struct("<4sHHI")                 # magic, version, reserved, meta JSON length
REC_MAGIC = b"PREC"
REC_HEAD = struct.Struct("<4sBBHqdddddII")          # 64 bytes, see docs/session-format.md
assert REC_HEAD.size == 64
KINDS = ("state", "water", "reference", "transient", "error")
KIND_CODE = {k: i + 1 for i, k in enumerate(KINDS)}


class CacheError(ValueError):
    """The cache file cannot be used (wrong format or settings)."""


# ------------------------------------------------------------------------------ encoding
def _meta_bytes(meta: dict) -> bytes:
    body = json.dumps(meta, sort_keys=True).encode()
    return FILE_HEAD.pack(FILE_MAGIC, FILE_VERSION, 0, len(body)) + body + struct.pack("<I", zlib.crc32(body))


def encode_record(rec: PreparedRecord) -> bytes:
    reason = (rec.rejected or "").encode()
    flag = 0
    if rec.kind == "transient":
        payload = reason + np.ascontiguousarray(rec.fid, np.complex64).tobytes()
    elif rec.kind in ("water", "reference"):
        payload = np.ascontiguousarray(rec.fid, np.complex128).tobytes()
    elif rec.kind == "state":
        payload = np.ascontiguousarray(rec.weights, np.complex128).tobytes()
        if rec.eddy is not None:
            flag = 1
            payload += np.ascontiguousarray(rec.eddy, np.float64).tobytes()
    elif rec.kind == "error":
        payload = reason
    else:
        raise CacheError(f"unknown record kind {rec.kind!r}")
    head = REC_HEAD.pack(REC_MAGIC, KIND_CODE[rec.kind], flag, len(reason), int(rec.seq), float(rec.t_s),
                         float(rec.freq_hz), float(rec.phase_deg), float(rec.residual_ratio),
                         float(rec.lipid_ratio), len(payload), 0)
    crc = zlib.crc32(payload, zlib.crc32(head[:-4]))
    return head[:-4] + struct.pack("<I", crc) + payload


def _decode(head: tuple, payload: memoryview, coils: int) -> PreparedRecord:
    _, code, flag, n_reason, seq, t_s, freq, phase, res, lip, _, _ = head
    kind = KINDS[code - 1]
    reason = bytes(payload[:n_reason]).decode() or None
    if kind == "transient":
        return PreparedRecord(kind, seq, t_s, np.frombuffer(payload[n_reason:], np.complex64), freq, phase,
                              reason, res, lip)
    if kind in ("water", "reference"):
        return PreparedRecord(kind, seq, t_s, np.frombuffer(payload, np.complex128))
    if kind == "state":
        weights = np.frombuffer(payload[:16 * coils], np.complex128)
        eddy = np.frombuffer(payload[16 * coils:], np.float64) if flag else None
        return PreparedRecord(kind, seq, t_s, weights=weights, eddy=eddy)
    return PreparedRecord(kind, seq, t_s, rejected=reason)


def read_cache(path: Path) -> tuple[dict | None, list[PreparedRecord], int]:
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
    coils = int(meta.get("coils", 0))
    records: list[PreparedRecord] = []
    offset = end
    while offset + REC_HEAD.size <= len(buf):
        head = REC_HEAD.unpack_from(buf, offset)
        n_payload, crc = head[10], head[11]
        stop = offset + REC_HEAD.size + n_payload
        if head[0] != REC_MAGIC or not 1 <= head[1] <= len(KINDS) or stop > len(buf):
            break
        payload = buf[offset + REC_HEAD.size:stop]
        if zlib.crc32(payload, zlib.crc32(buf[offset:offset + REC_HEAD.size - 4])) != crc:
            break
        try:
            records.append(_decode(head, payload, coils))
        except (ValueError, IndexError):
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


def covered_prefix(records: list[PreparedRecord], expected: list[int], stored: set[int]) -> int | None:
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


def usable(meta: dict | None, records: list[PreparedRecord], key: dict, reader,
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

    def write(self, rec: PreparedRecord) -> None:
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


def write_new_cache(folder: Path, meta: dict, records: list[PreparedRecord]) -> bool:
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
