"""MRD 1 framing, against bytes written by the `ismrmrd` package's own serializer (no sockets)."""

import io
import struct

import ismrmrd
import numpy as np
import pytest
from mrd_client import mrd1_acquisition, mrd1_header, session_scans

from protocols.mrd import framing


def stream_of(*objects, close=True) -> bytes:
    buf = io.BytesIO()
    ser = ismrmrd.ProtocolSerializer(buf)
    for obj in objects:
        ser.serialize(obj)
    if close:
        ser.close()
    return buf.getvalue()


def read_all(raw: bytes) -> list[framing.MrdMessage]:
    read = framing.reader_of(io.BytesIO(raw))
    out = []
    while True:
        try:
            out.append(framing.read_message(read))
        except EOFError:
            return out


def test_a_session_written_by_ismrmrd_reads_back_message_by_message():
    scans = session_scans(3, coils=2, points=64)
    header = mrd1_header(coils=2)
    raw = stream_of(ismrmrd.ConfigFile("mrsmon"), header, *[mrd1_acquisition(s) for s in scans], "a note")
    msgs = read_all(raw)
    assert [m.kind for m in msgs] == ["config_file", "header"] + ["acquisition"] * len(scans) + ["text", "close"]
    assert msgs[0].text == "mrsmon"
    assert msgs[1].text == header.toXML()
    for m, s in zip(msgs[2:-2], scans, strict=True):
        acq = ismrmrd.Acquisition.from_bytes(m.body)
        assert acq.scan_counter == s.scan_counter and np.array_equal(acq.data, s.data)
    assert msgs[-2].text == "a note"


def test_waveforms_images_and_arrays_are_framed_so_the_stream_stays_in_step():
    wave = ismrmrd.Waveform.from_array(np.arange(12, dtype=np.uint32).reshape(3, 4))
    image = ismrmrd.Image.from_array(np.ones((4, 5), np.float32))
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    acq = mrd1_acquisition(session_scans(1, coils=1, points=32, noise=0, water=0, dummy=0)[0])
    msgs = read_all(stream_of(wave, image, arr, acq))
    assert [m.kind for m in msgs] == ["waveform", "image", "ndarray", "acquisition", "close"]


def test_a_stream_cut_inside_a_message_is_truncated_not_a_clean_end():
    raw = stream_of(mrd1_header(), mrd1_acquisition(session_scans(1, points=64)[0]), close=False)
    with pytest.raises(framing.Truncated, match="short"):
        read_all(raw[:-100])


def test_an_unknown_message_id_is_a_framing_error():
    with pytest.raises(framing.FramingError, match="not an MRD message") as exc:
        read_all(struct.pack("<H", 777) + b"\0" * 10)
    assert exc.value.code == "unknown_message"


def test_a_huge_declared_length_is_refused_before_anything_is_read():
    class Refuses(io.BytesIO):
        def read(self, n=-1):
            assert n < framing.MAX_TEXT_BYTES, "the reader tried to read a declared giant body"
            return super().read(n)

    raw = struct.pack("<HI", framing.HEADER, 2**31)
    with pytest.raises(framing.FramingError, match="exceeds") as exc:
        framing.read_message(framing.reader_of(Refuses(raw)))
    assert exc.value.code == "too_large"


def test_replies_are_what_ismrmrd_clients_read():
    raw = framing.encode_text("done") + framing.encode_close()
    got = list(ismrmrd.ProtocolDeserializer(io.BytesIO(raw)).deserialize())
    assert got == ["done"]
