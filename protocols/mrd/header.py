"""The MRD acquisition header (MRD 1 XML via `ismrmrd.xsd`, MRD 2 via `mrd.Header`) reduced to what a
mrsmon session needs, with every identifying field pseudonymised.

Identifying values (patient name, ID, birth date, study UIDs) are read only to derive keyed hashes
(HMAC-SHA256 with a site salt); they are never stored, forwarded or logged, and `HeaderInfo`'s repr
hides them. An explicit pseudonym (`--subject`, `--session-code`) replaces the hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

SEQUENCE_NAMES = (  # substrings of a vendor sequence name -> the name mrsmon's basis simulation knows
    ("slaser", "sLASER"), ("semi-laser", "sLASER"), ("semilaser", "sLASER"), ("laser", "sLASER"),
    ("steam", "STEAM"), ("svs_st", "STEAM"), ("press", "PRESS"), ("svs_se", "PRESS"), ("svs_fid", "FID"),
)


class HeaderError(ValueError):
    """The header lacks something a session needs; the sentence says what."""


@dataclass(frozen=True)
class HeaderInfo:
    h1_frequency_hz: float | None = None
    field_strength_t: float | None = None
    tr_ms: float | None = None
    te_ms: float | None = None
    receiver_channels: int | None = None
    protocol_name: str | None = None
    sequence_name: str | None = None
    measurement_id: str | None = None
    user_strings: dict[str, str] = field(default_factory=dict)
    user_doubles: dict[str, float] = field(default_factory=dict)
    # identifying: used only as HMAC input, never shown
    subject_key: str | None = field(default=None, repr=False)
    study_key: str | None = field(default=None, repr=False)
    fingerprint: str = field(default="", repr=False)  # hash of the whole header: identity when no measurement ID


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if obj is None:
            return None
        obj = getattr(obj, name, None)
    return obj


def _first(values: Any) -> float | None:
    if values is None:
        return None
    if isinstance(values, (list, tuple)):
        return float(values[0]) if values else None
    return float(values)


def _text(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _params(items: Any, cast) -> dict:
    out = {}
    for p in items or ():
        name, value = _get(p, "name"), _get(p, "value")
        if name is not None and value is not None:
            try:
                out[str(name)] = cast(value)
            except (TypeError, ValueError):
                pass
    return out


def _join(*parts: Any) -> str | None:
    vals = [str(p) for p in parts if p not in (None, "")]
    return "|".join(vals) or None


def info_from_mrd1(xml: bytes | str) -> HeaderInfo:
    """Parse the MRD 1 XML header with `ismrmrd.xsd`; HeaderError if it is not valid."""
    from ismrmrd.xsd import CreateFromDocument

    raw = xml.encode() if isinstance(xml, str) else bytes(xml)
    try:
        h = CreateFromDocument(raw)
    except Exception as exc:  # the schema library raises many types; all mean "not a valid header"
        raise HeaderError(f"the MRD XML header does not parse against ismrmrd.xsd: {type(exc).__name__}") from None
    s, st, m = h.subjectInformation, h.studyInformation, h.measurementInformation
    up = h.userParameters
    return HeaderInfo(
        h1_frequency_hz=_first(_get(h, "experimentalConditions", "H1resonanceFrequency_Hz")),
        field_strength_t=_first(_get(h, "acquisitionSystemInformation", "systemFieldStrength_T")),
        tr_ms=_first(_get(h, "sequenceParameters", "TR")), te_ms=_first(_get(h, "sequenceParameters", "TE")),
        receiver_channels=_get(h, "acquisitionSystemInformation", "receiverChannels"),
        protocol_name=_text(_get(m, "protocolName")),
        sequence_name=_text(_get(m, "sequenceName")) or _text(_get(h, "sequenceParameters", "sequence_type")),
        measurement_id=_text(_get(m, "measurementID")),
        user_strings=_params(_get(up, "userParameterString"), str),
        user_doubles=_params(_get(up, "userParameterDouble"), float),
        subject_key=_join(_get(s, "patientID"), _get(s, "patientName"), _get(s, "patientBirthdate")),
        study_key=_join(_get(st, "studyInstanceUID"), _get(st, "studyID"), _get(st, "studyDate"),
                        _get(st, "studyTime")),
        fingerprint=hashlib.sha256(raw).hexdigest())


def info_from_mrd2(h: Any) -> HeaderInfo:
    """Map an `mrd.Header` (MRD 2) to the same fields."""
    s, st, m = h.subject_information, h.study_information, h.measurement_information
    up = h.user_parameters
    seq_type = _get(h, "sequence_parameters", "sequence_type")
    return HeaderInfo(
        h1_frequency_hz=_first(_get(h, "experimental_conditions", "h1resonance_frequency_hz")),
        field_strength_t=_first(_get(h, "acquisition_system_information", "system_field_strength_t")),
        tr_ms=_first(_get(h, "sequence_parameters", "t_r")), te_ms=_first(_get(h, "sequence_parameters", "t_e")),
        receiver_channels=_get(h, "acquisition_system_information", "receiver_channels"),
        protocol_name=_text(_get(m, "protocol_name")),
        sequence_name=_text(_get(m, "sequence_name")) or _text(seq_type),
        measurement_id=_text(_get(m, "measurement_id")),
        user_strings=_params(_get(up, "user_parameter_string"), str),
        user_doubles=_params(_get(up, "user_parameter_double"), float),
        subject_key=_join(_get(s, "patient_id"), _get(s, "patient_name"), _get(s, "patient_birthdate")),
        study_key=_join(_get(st, "study_instance_uid"), _get(st, "study_id"), _get(st, "study_date"),
                        _get(st, "study_time")),
        fingerprint=hashlib.sha256(repr(h).encode()).hexdigest())


def normalise_sequence(name: str | None) -> str:
    """A vendor sequence name ('*svs_se', 'eja_svs_slaser') as PRESS / sLASER / STEAM / FID, else as given."""
    if not name:
        return "unknown"
    low = name.lower()
    for key, value in SEQUENCE_NAMES:
        if key in low:
            return value
    return re.sub(r"[^A-Za-z0-9_.+-]", "", name)[:64] or "unknown"


def keyed_code(salt: bytes, kind: str, value: str | None, prefix: str, n_hex: int) -> str:
    """`prefix` + the first `n_hex` hex digits of HMAC-SHA256(salt, kind:value); 'unknown' without a value."""
    if not value:
        return f"{prefix}unknown"
    digest = hmac.new(salt, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"{prefix}{digest[:n_hex]}"


@dataclass(frozen=True)
class Pseudonyms:
    """How identities become codes: a site salt, or explicit codes given by the operator."""

    salt: bytes
    subject: str | None = None
    session_code: str | None = None
    kit_code: str | None = None

    def subject_code(self, info: HeaderInfo) -> str:
        return self.subject or keyed_code(self.salt, "subject", info.subject_key, "sub-", 10)

    def session_code_for(self, info: HeaderInfo) -> str:
        return self.session_code or keyed_code(self.salt, "study", info.study_key, "ses-", 8)

    def session_id(self, info: HeaderInfo) -> str:
        """Stable per measurement, so a reconnect or a resend joins the same mrsmon session."""
        key = info.measurement_id or info.fingerprint
        return keyed_code(self.salt, "measurement", key, "mrd-", 16)

    def kit(self, info: HeaderInfo) -> str:
        for name in ("kit_code", "KitCode", "mrsmon_kit"):
            if info.user_strings.get(name):
                return re.sub(r"[^A-Za-z0-9_.-]", "", info.user_strings[name])[:64] or "KIT-UNSET"
        return self.kit_code or "KIT-UNSET"


def require_fields(info: HeaderInfo, nucleus: str = "1H") -> float:
    """The spectrometer frequency (Hz), once the header holds everything a session needs; else HeaderError."""
    freq_hz = info.user_doubles.get("SpectrometerFrequency_Hz") or info.h1_frequency_hz
    if not freq_hz or freq_hz <= 0:
        raise HeaderError("the header has no H1 resonance frequency (experimentalConditions.H1resonanceFrequency_Hz)")
    if nucleus != "1H" and "SpectrometerFrequency_Hz" not in info.user_doubles:
        raise HeaderError(f"nucleus {nucleus}: the header gives only the 1H frequency; send the "
                          "userParameterDouble SpectrometerFrequency_Hz")
    if not info.tr_ms or info.tr_ms <= 0:
        raise HeaderError("the header has no repetition time (sequenceParameters.TR)")
    if info.te_ms is None or info.te_ms < 0:
        raise HeaderError("the header has no echo time (sequenceParameters.TE)")
    return float(freq_hz)


def session_start_fields(info: HeaderInfo, *, points: int, coils: int, dwell_s: float, pseudonyms: Pseudonyms,
                         protocol: str | None, nucleus: str = "1H") -> dict[str, Any]:
    """SESSION_START fields (without session id, seq and start time); HeaderError names what is missing."""
    freq_hz = require_fields(info, nucleus)
    assert info.tr_ms is not None and info.te_ms is not None
    fields: dict[str, Any] = {
        "spectrometer_frequency_mhz": float(freq_hz) / 1e6, "nucleus": nucleus, "dwell_time_s": float(dwell_s),
        "points": int(points), "coils": int(coils), "echo_time_s": float(info.te_ms) / 1000,
        "repetition_time_s": float(info.tr_ms) / 1000, "sequence": normalise_sequence(info.sequence_name),
        "subject": pseudonyms.subject_code(info), "session_code": pseudonyms.session_code_for(info),
        "kit_code": pseudonyms.kit(info),
        "protocol": protocol or re.sub(r"[^A-Za-z0-9_.+-]", "_", info.protocol_name or "mrd")[:64],
    }
    if info.field_strength_t and info.field_strength_t > 0:
        fields["field_strength_t"] = float(info.field_strength_t)
    return fields
