"""MRD header -> SESSION_START fields: what a plan needs, and nothing that identifies the participant."""

import json

import pytest
from mrd_client import IDENTITY, TE_MS, TR_MS, mrd1_header

from protocols.mrd.header import (
    HeaderError,
    Pseudonyms,
    info_from_mrd1,
    info_from_mrd2,
    normalise_sequence,
    session_start_fields,
)

SALT = b"site-salt-for-tests-0123456789ab"


def fields(header, pseudonyms=None, **kw):
    info = info_from_mrd1(header.toXML())
    return info, session_start_fields(info, points=2048, coils=4, dwell_s=2.5e-4,
                                      pseudonyms=pseudonyms or Pseudonyms(SALT), protocol=None, **kw)


def test_acquisition_parameters_come_from_the_header():
    _, f = fields(mrd1_header())
    assert f["spectrometer_frequency_mhz"] == pytest.approx(123.249)
    assert f["repetition_time_s"] == pytest.approx(TR_MS / 1000) and f["echo_time_s"] == pytest.approx(TE_MS / 1000)
    assert f["sequence"] == "PRESS" and f["field_strength_t"] == pytest.approx(2.89362)
    assert f["protocol"] == "svs_se_30_ACC" and f["nucleus"] == "1H"


def test_no_identifying_value_reaches_the_session_fields_or_the_repr():
    info, f = fields(mrd1_header())
    text = json.dumps(f) + repr(info)
    for value in (*IDENTITY.values(), "1.2.3.4.5.6789", "STUDY-1", "Doe", "4711"):
        assert value not in text
    assert f["subject"].startswith("sub-") and f["session_code"].startswith("ses-")


def test_pseudonyms_are_stable_per_salt_and_differ_between_sites():
    a, fa = fields(mrd1_header())
    _, fb = fields(mrd1_header(measurement_id="another"))
    _, fc = fields(mrd1_header(), Pseudonyms(b"another-site-salt-000000000000"))
    assert fa["subject"] == fb["subject"] and fa["session_code"] == fb["session_code"]
    assert fa["subject"] != fc["subject"]
    p = Pseudonyms(SALT)
    assert p.session_id(a) != p.session_id(info_from_mrd1(mrd1_header(measurement_id="another").toXML()))


def test_explicit_pseudonyms_and_kit_replace_the_hashes():
    _, f = fields(mrd1_header(), Pseudonyms(SALT, subject="P017", session_code="ses-02", kit_code="KIT-0042"))
    assert (f["subject"], f["session_code"], f["kit_code"]) == ("P017", "ses-02", "KIT-0042")


def test_a_header_without_tr_is_refused_with_the_reason():
    with pytest.raises(HeaderError, match="repetition time"):
        fields(mrd1_header(tr_ms=None))


def test_a_non_mrd_header_is_refused():
    with pytest.raises(HeaderError, match="does not parse"):
        info_from_mrd1(b"<notmrd/>")


@pytest.mark.parametrize("name, expected", [("*svs_se", "PRESS"), ("eja_svs_slaser", "sLASER"), ("svs_st", "STEAM"),
                                            ("%CustomerSeq%\\fid", "CustomerSeqfid"), (None, "unknown")])
def test_vendor_sequence_names_become_basis_names(name, expected):
    assert normalise_sequence(name) == expected


def test_mrd2_header_maps_to_the_same_fields():
    import mrd

    h = mrd.Header(experimental_conditions=mrd.ExperimentalConditionsType(h1resonance_frequency_hz=123_249_000),
                   sequence_parameters=mrd.SequenceParametersType(t_r=[TR_MS], t_e=[TE_MS]),
                   measurement_information=mrd.MeasurementInformationType(measurement_id="45046_111_222_7",
                                                                          protocol_name="svs_se_30_ACC",
                                                                          sequence_name="*svs_se"),
                   subject_information=mrd.SubjectInformationType(patient_name=IDENTITY["name"],
                                                                  patient_id=IDENTITY["pid"]))
    info2 = info_from_mrd2(h)
    f2 = session_start_fields(info2, points=2048, coils=4, dwell_s=2.5e-4, pseudonyms=Pseudonyms(SALT), protocol=None)
    _, f1 = fields(mrd1_header())
    for key in ("spectrometer_frequency_mhz", "repetition_time_s", "echo_time_s", "sequence", "protocol"):
        assert f2[key] == f1[key]
    assert IDENTITY["pid"] not in json.dumps(f2) + repr(info2)
