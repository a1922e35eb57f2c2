"""MRD 1 streaming framing (the Gadgetron / python-ismrmrd-server / Siemens FIRE session protocol).

A session on a TCP socket is a sequence of messages, each a little-endian uint16 id and a body:

| id | message | body |
|---|---|---|
| 1 | CONFIG_FILE | 1024 bytes, a NUL-padded name |
| 2 | CONFIG_TEXT | uint32 length, text |
| 3 | HEADER | uint32 length, the XML acquisition header (ismrmrd.xsd) |
| 4 | CLOSE | none |
| 5 | TEXT | uint32 length, text |
| 1008 | ACQUISITION | 340-byte header, float32 trajectory (samples x dims), complex64 data (channels x samples) |
| 1022 | IMAGE | ImageHeader, uint64 attribute length, attributes, pixel data |
| 1026 | WAVEFORM | WaveformHeader, uint32 data (channels x samples) |
| 1030 | NDARRAY | uint16 dtype, uint16 version, uint16 ndim, uint64 dims, data |

`read_message(read_exactly)` reads one message from any blocking byte source (a socket, a file, a
BytesIO); only framing is checked here, and every length is bounded before anything is allocated.
The header structs come from the `ismrmrd` package; what the bytes mean is `protocols.mrd.mapping`'s job.
A framing error cannot be resynchronised (the next message's start is unknown), so it ends the
connection; a truncated stream raises `Truncated`.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from dataclasses import dataclass

CONFIG_FILE, CONFIG_TEXT, HEADER, CLOSE, TEXT = 1, 2, 3, 4, 5
ACQUISITION, IMAGE, WAVEFORM, NDARRAY = 1008, 1022, 1026, 1030
NAMES = {CONFIG_FILE: "config_file", CONFIG_TEXT: "config_text", HEADER: "header", CLOSE: "close", TEXT: "text",
         ACQUISITION: "acquisition", IMAGE: "image", WAVEFORM: "waveform", NDARRAY: "ndarray"}
CONFIG_FILE_BYTES = 1024
MAX_TEXT_BYTES = 16 * 2**20      # an XML header with every user parameter is well under this
MAX_BODY_BYTES = 256 * 2**20     # one acquisition/image: 256 coils x 65535 samples is 134 MB
ReadExactly = Callable[[int], bytes]


class FramingError(ValueError):
    """The byte stream is not MRD framing; `code` names the problem for the refusal counters."""

    def __init__(self, code: str, sentence: str):
        super().__init__(sentence)
        self.code = code


class Truncated(FramingError):
    def __init__(self, sentence: str):
        super().__init__("truncated", sentence)


@dataclass(frozen=True)
class MrdMessage:
    id: int
    body: bytes = b""

    @property
    def kind(self) -> str:
        return NAMES[self.id]

    @property
    def text(self) -> str:
        """CONFIG_FILE, CONFIG_TEXT, HEADER and TEXT bodies as text."""
        raw = self.body[4:] if self.id in (CONFIG_TEXT, HEADER, TEXT) else self.body.rstrip(b"\0")
        return raw.decode("utf-8", errors="replace")


def reader_of(stream) -> ReadExactly:
    """read_exactly over a blocking binary stream (`sock.makefile('rb')`, a file, BytesIO)."""

    def read_exactly(n: int) -> bytes:
        data = stream.read(n) if n else b""
        if len(data) != n:
            raise Truncated(f"stream ended {n - len(data)} bytes short of a complete message")
        return data

    return read_exactly


def read_message(read_exactly: ReadExactly) -> MrdMessage:
    """One complete message; `Truncated` if the stream ends inside it, EOFError if it ends before it."""
    try:
        head = read_exactly(2)
    except Truncated:
        raise EOFError("end of stream") from None
    (msg_id,) = struct.unpack("<H", head)
    if msg_id == CLOSE:
        return MrdMessage(CLOSE)
    if msg_id == CONFIG_FILE:
        return MrdMessage(msg_id, read_exactly(CONFIG_FILE_BYTES))
    if msg_id in (CONFIG_TEXT, HEADER, TEXT):
        prefix = read_exactly(4)
        (n,) = struct.unpack("<I", prefix)
        _bound(n, MAX_TEXT_BYTES, NAMES[msg_id])
        return MrdMessage(msg_id, prefix + read_exactly(n))
    reader = _BODY_READERS.get(msg_id)
    if reader is None:
        raise FramingError("unknown_message", f"message id {msg_id} is not an MRD message")
    return MrdMessage(msg_id, reader(read_exactly))


def _bound(n: int, limit: int, what: str) -> None:
    if n > limit:
        raise FramingError("too_large", f"{what} of {n} bytes exceeds the limit of {limit}")


def _acquisition_body(read_exactly: ReadExactly) -> bytes:
    from ismrmrd import AcquisitionHeader

    head = read_exactly(ctypes.sizeof(AcquisitionHeader))
    h = AcquisitionHeader.from_buffer_copy(head)
    n = h.number_of_samples * (h.trajectory_dimensions * 4 + h.active_channels * 8)
    _bound(n, MAX_BODY_BYTES, "acquisition")
    return head + read_exactly(n)


def _waveform_body(read_exactly: ReadExactly) -> bytes:
    from ismrmrd import WaveformHeader

    head = read_exactly(ctypes.sizeof(WaveformHeader))
    h = WaveformHeader.from_buffer_copy(head)
    n = h.channels * h.number_of_samples * 4
    _bound(n, MAX_BODY_BYTES, "waveform")
    return head + read_exactly(n)


def _image_body(read_exactly: ReadExactly) -> bytes:
    from ismrmrd import ImageHeader
    from ismrmrd.image import get_dtype_from_data_type

    head = read_exactly(ctypes.sizeof(ImageHeader))
    h = ImageHeader.from_buffer_copy(head)
    attr_len_raw = read_exactly(8)
    (attr_len,) = struct.unpack("<Q", attr_len_raw)
    _bound(attr_len, MAX_TEXT_BYTES, "image attributes")
    attrs = read_exactly(attr_len)
    try:
        itemsize = get_dtype_from_data_type(h.data_type).itemsize
    except TypeError:
        raise FramingError("bad_image", f"image data type {h.data_type} is unknown") from None
    n = h.channels * h.matrix_size[0] * h.matrix_size[1] * h.matrix_size[2] * itemsize
    _bound(n, MAX_BODY_BYTES, "image")
    return head + attr_len_raw + attrs + read_exactly(n)


_NDARRAY_ITEMSIZE = {1: 2, 2: 2, 3: 4, 4: 4, 5: 4, 6: 8, 7: 8, 8: 16}


def _ndarray_body(read_exactly: ReadExactly) -> bytes:
    head = read_exactly(6)
    dtype, _version, ndim = struct.unpack("<HHH", head)
    if dtype not in _NDARRAY_ITEMSIZE or ndim > 7:
        raise FramingError("bad_ndarray", f"ndarray with data type {dtype} and {ndim} dimensions")
    dims_raw = read_exactly(8 * ndim)
    n = _NDARRAY_ITEMSIZE[dtype]
    for d in struct.unpack(f"<{ndim}Q", dims_raw):
        n *= d
        _bound(n, MAX_BODY_BYTES, "ndarray")
    return head + dims_raw + read_exactly(n)


_BODY_READERS = {ACQUISITION: _acquisition_body, WAVEFORM: _waveform_body, IMAGE: _image_body,
                 NDARRAY: _ndarray_body}


# ---------------------------------------------------------------- what the bridge sends back

def encode_text(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<HI", TEXT, len(raw)) + raw


def encode_close() -> bytes:
    return struct.pack("<H", CLOSE)
