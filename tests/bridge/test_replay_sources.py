"""`mrsmon replay` of MRD files (MRD 1 HDF5, a saved MRD 1 stream, MRD 2 binary) and of public vendor
files through spec2nii, into a real agent. Vendor numbers are checked against the vendor headers read
here independently, and the samples against spec2nii's own NIfTI-MRS output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from agent_process import AgentProcess
from mrd_client import DWELL_US, TR_MS, mrd1_acquisition, mrd1_header, mrd2_stream, session_scans
from vendor_data import vendor_file

from analysis.replay import ReplayError, replay
from protocols.session_folder import SessionReader

KIND_FLAGS = {"noise": {"noise"}, "dummy": {"dummy"}, "water": {"water_ref"}, "metab": set()}


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    a = AgentProcess(tmp_path_factory.mktemp("replay") / "sessions")
    try:
        yield a.start()
    finally:
        a.stop()


def write_h5(path: Path, scans) -> None:
    import ismrmrd

    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    ds.write_xml_header(mrd1_header().toXML())
    for s in scans:
        ds.append_acquisition(mrd1_acquisition(s))
    ds.close()


def write_mrd1_stream(path: Path, scans) -> None:
    import ismrmrd

    with open(path, "wb") as f, ismrmrd.ProtocolSerializer(f) as ser:
        ser.serialize(ismrmrd.ConfigFile("saved"))
        ser.serialize(mrd1_header())
        for s in scans:
            ser.serialize(mrd1_acquisition(s))


@pytest.mark.parametrize("name, writer", [("meas.h5", write_h5), ("meas.mrd", write_mrd1_stream),
                                          ("meas.bin", lambda p, s: p.write_bytes(mrd2_stream(s)))])
def test_an_mrd_file_replays_sample_for_sample(agent, tmp_path, name, writer):
    scans = session_scans(16, discard_pre=3)
    path = tmp_path / name
    writer(path, scans)
    report = replay(path, agent.listen, session_id=f"mrdfile-{path.suffix[1:]}")
    assert report.acknowledged and not report.refused and report.transients == len(scans)
    r = SessionReader(agent.sessions / report.session)
    assert r.summary()["complete"]
    assert r.header["dwell_time_s"] == pytest.approx(DWELL_US * 1e-6)
    assert r.header["repetition_time_s"] == pytest.approx(TR_MS / 1e3)
    assert r.header["subject"] == "replay"
    for seq, s in zip(r.seqs, scans, strict=True):
        assert np.array_equal(r.transient(seq), s.data[:, 3:])
        assert set(r.flags(seq)) == KIND_FLAGS[s.kind]
        assert r.t_s(seq) == pytest.approx((s.time_stamp - scans[0].time_stamp) * 2.5e-3)


def test_a_file_that_is_not_mrd_gets_one_line(tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(ValueError, match="neither MRD 1"):
        replay(bad, "tcp://127.0.0.1:1")
    with pytest.raises(ReplayError, match="vendor file"):
        replay(tmp_path / "missing.xyz", "tcp://127.0.0.1:1")


def spec2nii_output(args: list[str], tmp: Path) -> tuple[np.ndarray, dict]:
    """spec2nii run here on its own: the reference the replay must match sample for sample."""
    out = tmp / "ref"
    subprocess.run([sys.executable, "-c", "from spec2nii.spec2nii import main; main()", *args, "-o", str(out),
                    "-f", "ref"], check=True, capture_output=True)
    img = nib.load(str(out / "ref.nii.gz"))
    ext = json.loads(img.header.extensions[0].get_content())
    return np.asarray(img.dataobj).reshape(-1), {**ext, "dwell_s": float(img.header["pixdim"][4])}


def assert_stored_as_converted_and_oriented(stored: np.ndarray, converted: np.ndarray, header: dict) -> None:
    """Sample for sample spec2nii's output, conjugated only if that was mirrored; stored in the NIfTI-MRS
    convention either way (judged by mrs.orientation, independently of the replay's own decision)."""
    from mrs.orientation import data_orientation

    converted = converted.astype(np.complex64)
    mirrored = data_orientation(converted, header["dwell_time_s"], header["spectrometer_frequency_mhz"], 4.65)
    assert mirrored.reversed is not None, mirrored.message
    assert np.array_equal(stored, np.conj(converted) if mirrored.reversed else converted)
    assert data_orientation(stored, header["dwell_time_s"], header["spectrometer_frequency_mhz"],
                            4.65).reversed is False


def rda_header(path: Path) -> dict[str, str]:
    text = path.read_bytes().split(b">>> End of header <<<")[0].decode("latin-1")
    return dict(re.findall(r"^(\w+(?:\[\d+\])?): (.*?)\s*$", text, re.M))


def test_siemens_rda_replays_with_the_vendor_header_values(agent, tmp_path):
    path = vendor_file("siemens-rda/SVS_30.rda")
    h = rda_header(path)
    report = replay(path, agent.listen, session_id="vendor-rda")
    assert report.acknowledged and not report.refused and report.transients == 1
    r = SessionReader(agent.sessions / report.session)
    assert r.header["spectrometer_frequency_mhz"] == pytest.approx(float(h["MRFrequency"]))
    assert r.header["repetition_time_s"] == pytest.approx(float(h["TR"]) / 1e3)
    assert r.header["echo_time_s"] == pytest.approx(float(h["TE"]) / 1e3)
    assert r.header["points"] == int(h["VectorSize"]) and r.header["sequence"] == "PRESS"
    assert r.header["dwell_time_s"] == pytest.approx(float(h["DwellTime"]) * 1e-6, rel=1e-3)
    ref, _ = spec2nii_output(["rda", str(path)], tmp_path)
    assert_stored_as_converted_and_oriented(r.transient(1)[0], ref, r.header)
    # The RDA's patient "name" (445) never leaves the file: no string value holds it, no key names a
    # patient. (A bare substring check on the JSON also matched digits of the start timestamp.)
    strings = re.findall(r'"((?:[^"\\]|\\.)*)"', json.dumps(r.header))  # every key and string value
    assert not any("445" in t or "patient" in t.lower() for t in strings), strings


@pytest.mark.parametrize("name", ["SVS_30.IMA", "SVS_XA60.dcm"])
def test_siemens_dicom_replays_like_spec2nii_reads_it(agent, tmp_path, name):
    import pydicom

    path = vendor_file(f"siemens-dicom/{name}")
    report = replay(path, agent.listen, session_id=f"vendor-{name.replace('.', '-')}")
    assert report.acknowledged and not report.refused and report.transients == 1
    r = SessionReader(agent.sessions / report.session)
    ref, ext = spec2nii_output(["dicom", str(path)], tmp_path)
    assert_stored_as_converted_and_oriented(r.transient(1)[0], ref, r.header)
    assert r.header["dwell_time_s"] == pytest.approx(ext["dwell_s"])
    ds = pydicom.dcmread(path, force=True)
    if "RepetitionTime" in ds:  # standard MR Spectroscopy Storage carries it as a plain tag
        assert r.header["repetition_time_s"] == pytest.approx(float(ds.RepetitionTime) / 1e3)
    assert r.header["spectrometer_frequency_mhz"] == pytest.approx(ext["SpectrometerFrequency"][0])


def test_philips_sdat_replays_with_its_water_reference(agent, tmp_path):
    act = vendor_file("philips-sdat/act/sub-01_PRESS_35_act.sdat")
    ref_file = vendor_file("philips-sdat/ref/sub-01_PRESS_35_ref.sdat")
    spar = dict(re.findall(r"^(\w+)\s*:\s*(.*?)\s*$", act.with_suffix(".spar").read_text("latin-1"), re.M))
    report = replay(act, agent.listen, session_id="vendor-sdat", source_options={"water": ref_file})
    assert report.acknowledged and not report.refused and report.transients == 2
    r = SessionReader(agent.sessions / report.session)
    assert [sorted(r.flags(s)) for s in r.seqs] == [["water_ref"], []]
    assert r.header["spectrometer_frequency_mhz"] == pytest.approx(int(spar["synthesizer_frequency"]) / 1e6)
    assert r.header["points"] == int(spar["samples"])
    assert r.header["dwell_time_s"] == pytest.approx(1 / float(spar["sample_frequency"]))
    assert r.header["echo_time_s"] == pytest.approx(float(spar["echo_time"]) / 1e3)
    assert r.header["repetition_time_s"] == pytest.approx(float(spar["repetition_time"]) / 1e3)
    metab, _ = spec2nii_output(["philips", str(act), str(act.with_suffix(".spar"))], tmp_path)
    assert_stored_as_converted_and_oriented(r.transient(2)[0], metab, r.header)
    assert r.t_s(2) - r.t_s(1) == pytest.approx(float(spar["repetition_time"]) / 1e3)
