"""A scanner-side MRD client built on the maintained packages (`ismrmrd` for MRD 1, `mrd` for MRD 2), as a
scanner's FIRE/Gadgetron client would be: it knows nothing of mrsmon."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import numpy as np

POINTS, COILS, DWELL_US, TR_MS, TE_MS, F0_HZ = 2048, 4, 250.0, 2000.0, 30.0, 123_249_000.0
FLAG = {"noise": 19, "phasecorr": 24, "dummy": 27, "last": 25, "navigator": 23}
IDENTITY = dict(name="Doe^Jane", pid="PID-4711-SECRET", birth="1970-01-31")


def mrd1_header(measurement_id: str = "45046_111_222_7", tr_ms: float | None = TR_MS, coils: int = COILS,
                sequence: str = "*svs_se", f0_hz: float = F0_HZ):
    import ismrmrd.xsd as X

    h = X.ismrmrdHeader(
        experimentalConditions=X.experimentalConditionsType(H1resonanceFrequency_Hz=int(round(f0_hz))),
        encoding=[X.encodingType(
            encodedSpace=X.encodingSpaceType(matrixSize=X.matrixSizeType(x=POINTS, y=1, z=1),
                                             fieldOfView_mm=X.fieldOfViewMm(x=20, y=20, z=20)),
            reconSpace=X.encodingSpaceType(matrixSize=X.matrixSizeType(x=POINTS, y=1, z=1),
                                           fieldOfView_mm=X.fieldOfViewMm(x=20, y=20, z=20)),
            encodingLimits=X.encodingLimitsType(), trajectory=X.trajectoryType.CARTESIAN)],
        subjectInformation=X.subjectInformationType(patientName=IDENTITY["name"], patientID=IDENTITY["pid"],
                                                    patientBirthdate=IDENTITY["birth"]),
        studyInformation=X.studyInformationType(studyInstanceUID="1.2.3.4.5.6789", studyID="STUDY-1"),
        measurementInformation=X.measurementInformationType(
            measurementID=measurement_id, patientPosition=X.patientPositionType.HFS, protocolName="svs_se_30_ACC",
            sequenceName=sequence),
        acquisitionSystemInformation=X.acquisitionSystemInformationType(systemFieldStrength_T=2.89362,
                                                                        receiverChannels=coils),
        sequenceParameters=X.sequenceParametersType(TR=[tr_ms] if tr_ms else [], TE=[TE_MS]),
    )
    return h


@dataclass
class Scan:
    scan_counter: int
    kind: str              # "noise" | "dummy" | "water" | "metab" | "navigator"
    data: np.ndarray       # (coils, points + discard)
    time_stamp: int
    discard_pre: int = 0


def session_scans(n_metab: int, coils: int = COILS, points: int = POINTS, seed: int = 7, noise: int = 2,
                  water: int = 2, dummy: int = 1, discard_pre: int = 0) -> list[Scan]:
    """noise, dummy, water references, then metabolite transients: each FID a decaying line plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(points + discard_pre) * DWELL_US * 1e-6
    kinds = ["noise"] * noise + ["dummy"] * dummy + ["water"] * water + ["metab"] * n_metab
    scans = []
    for i, kind in enumerate(kinds):
        amp = {"noise": 0.0, "water": 50.0}.get(kind, 1.0)
        fid = amp * np.exp(2j * np.pi * 15.0 * t - t / 0.08)
        data = (fid[None, :] * (1 + 0.1 * np.arange(coils))[:, None]
                + 0.05 * (rng.standard_normal((coils, t.size)) + 1j * rng.standard_normal((coils, t.size))))
        scans.append(Scan(i + 1, kind, data.astype(np.complex64), 40_000_000 + i * int(TR_MS / 2.5), discard_pre))
    return scans


def simulated_scans(n_metabolite: int, coils: int = COILS, seed: int = 5, plan_name: str = "quick"):
    """Scans from mrsmon's own simulator (a realistic brain spectrum), as an MRD client would send them; and
    the plan, whose acquisition the MRD header must describe."""
    from protocols.plan import load_plan
    from simulator.forward import SessionSimulator

    plan = load_plan(plan_name)
    kinds = {"metabolite": "metab", "water_ref": "water"}
    out, n = [], 0
    for s in SessionSimulator(plan, seed=seed, coils=coils).scans():
        out.append(Scan(s.index + 1, kinds.get(s.kind, s.kind), s.data, 40_000_000 + int(round(s.t_s / 2.5e-3))))
        n += s.kind == "metabolite"
        if n >= n_metabolite:
            return plan, out
    return plan, out


def mrd1_acquisition(s: Scan, last: bool = False, dwell_us: float = DWELL_US):
    import ismrmrd

    acq = ismrmrd.Acquisition.from_array(s.data)
    acq.scan_counter = s.scan_counter
    acq.acquisition_time_stamp = s.time_stamp
    acq.sample_time_us = dwell_us
    acq.discard_pre = s.discard_pre
    acq.version = 1
    flag = {"noise": FLAG["noise"], "dummy": FLAG["dummy"], "water": FLAG["phasecorr"],
            "navigator": FLAG["navigator"]}.get(s.kind)
    if flag:
        acq.set_flag(flag)
    if last:
        acq.set_flag(FLAG["last"])
    return acq


class Mrd1Client:
    """config, header, acquisitions, close; reads the server's TEXT and CLOSE replies."""

    def __init__(self, host: str, port: int, timeout_s: float = 60.0, nodelay: bool = True):
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        if nodelay:  # a streaming client sends each acquisition at once (no Nagle wait for the last segment)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.out = self.sock.makefile("wb")

    def begin(self, header, config: str = "mrsmon") -> None:
        import ismrmrd

        self.ser = ismrmrd.ProtocolSerializer(self.out)
        self.ser.serialize(ismrmrd.ConfigFile(config))
        self.ser.serialize(header)
        self.out.flush()

    def send(self, scans: list[Scan], last_index: int | None = None) -> None:
        for s in scans:
            self.ser.serialize(mrd1_acquisition(s, last=s.scan_counter == last_index))
        self.out.flush()

    def send_raw(self, data: bytes) -> None:
        self.out.write(data)
        self.out.flush()

    def close_and_wait(self) -> list:
        """Send CLOSE, then read the server's messages up to its CLOSE; [] if the server closed without one."""

        self.ser.close()
        return self.replies()

    def replies(self) -> list:
        import ismrmrd

        got = []
        try:
            for item in ismrmrd.ProtocolDeserializer(self.sock.makefile("rb")).deserialize():
                got.append(item)
            got.append("CLOSE")
        except (EOFError, OSError):
            pass
        finally:
            self.abort()
        return got

    def abort(self) -> None:
        """Drop the connection mid-measurement, as a crashed client would."""
        self.out.close()
        self.sock.close()


def mrd2_stream(scans: list[Scan], measurement_id: str = "mrd2-test") -> bytes:
    """An MRD 2 binary stream (header, acquisitions, end) written by the `mrd` package."""
    import io

    import mrd

    h = mrd.Header(experimental_conditions=mrd.ExperimentalConditionsType(h1resonance_frequency_hz=123_249_000),
                   sequence_parameters=mrd.SequenceParametersType(t_r=[TR_MS], t_e=[30.0]),
                   measurement_information=mrd.MeasurementInformationType(measurement_id=measurement_id,
                                                                          sequence_name="svs_slaser"),
                   subject_information=mrd.SubjectInformationType(patient_name=IDENTITY["name"]))
    flag = {"noise": mrd.AcquisitionFlags.IS_NOISE_MEASUREMENT, "dummy": mrd.AcquisitionFlags.IS_DUMMYSCAN_DATA,
            "water": mrd.AcquisitionFlags.IS_PHASECORR_DATA}
    buf = io.BytesIO()
    w = mrd.BinaryMrdWriter(buf)
    w.write_header(h)
    w.write_data(mrd.StreamItem.Acquisition(mrd.Acquisition(
        head=mrd.AcquisitionHeader(flags=flag.get(s.kind, mrd.AcquisitionFlags(0)), scan_counter=s.scan_counter,
                                   acquisition_time_stamp=s.time_stamp, sample_time_us=DWELL_US,
                                   discard_pre=s.discard_pre),
        data=s.data)) for s in scans)
    w.close()
    return buf.getvalue()
