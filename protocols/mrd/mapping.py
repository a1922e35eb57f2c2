"""One MRD acquisition (all channels of one readout) -> one mrsmon transient, or a refusal with a reason.

Both MRD versions number their acquisition flags the same way (flag k is bit k-1), so one table
serves both. What a readout is follows from its flags alone: noise, dummy, water reference (by
default MRD's phase-correction flag, which is what Siemens' SVS reference scans carry; any other
flag can be named with `--water-flag`), metabolite, or something that is not an MRS transient at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLAG_BITS = {  # MRD acquisition flag numbers (ismrmrd constants.py; MRD 2 AcquisitionFlags = 1 << (k-1))
    "IS_NOISE_MEASUREMENT": 19, "IS_PARALLEL_CALIBRATION": 20, "IS_PARALLEL_CALIBRATION_AND_IMAGING": 21,
    "IS_NAVIGATION_DATA": 23, "IS_PHASECORR_DATA": 24, "LAST_IN_MEASUREMENT": 25, "IS_HPFEEDBACK_DATA": 26,
    "IS_DUMMYSCAN_DATA": 27, "IS_RTFEEDBACK_DATA": 28, "IS_SURFACECOILCORRECTIONSCAN_DATA": 29,
    "IS_PHASE_STABILIZATION_REFERENCE": 30, "IS_PHASE_STABILIZATION": 31,
    **{f"USER{i}": 56 + i for i in range(1, 9)},
}
NOT_MRS = ("IS_PARALLEL_CALIBRATION", "IS_PARALLEL_CALIBRATION_AND_IMAGING", "IS_NAVIGATION_DATA",
           "IS_HPFEEDBACK_DATA", "IS_RTFEEDBACK_DATA", "IS_SURFACECOILCORRECTIONSCAN_DATA",
           "IS_PHASE_STABILIZATION_REFERENCE", "IS_PHASE_STABILIZATION")
DEFAULT_WATER_FLAGS = ("IS_PHASECORR_DATA",)
MAX_COILS = 256
MIN_POINTS = 16
DWELL_TOLERANCE = 1e-3  # relative: a dwell rounded to the µs is the same dwell, another bandwidth is not


def has_flag(flags: int, name: str) -> bool:
    return bool(flags >> (FLAG_BITS[name] - 1) & 1)


@dataclass
class Readout:
    """One acquisition in version-neutral form."""

    flags: int
    scan_counter: int
    time_stamp: int | None
    sample_time_us: float
    discard_pre: int
    discard_post: int
    trajectory_dims: int
    data: np.ndarray  # (channels, samples) complex64, as sent

    @property
    def last_in_measurement(self) -> bool:
        return has_flag(self.flags, "LAST_IN_MEASUREMENT")


class Refused(ValueError):
    """This acquisition cannot become a transient; `code` is counted, the sentence logged."""

    def __init__(self, code: str, sentence: str):
        super().__init__(sentence)
        self.code = code


def readout_from_mrd1(body: bytes) -> Readout:
    """An ACQUISITION message body parsed by the `ismrmrd` package."""
    from ismrmrd import Acquisition

    acq = Acquisition.from_bytes(body)
    return Readout(int(acq.flags), int(acq.scan_counter), int(acq.acquisition_time_stamp),
                   float(acq.sample_time_us), int(acq.discard_pre), int(acq.discard_post),
                   int(acq.trajectory_dimensions), acq.data)


def readout_from_mrd2(acq) -> Readout:
    """An `mrd.Acquisition` (MRD 2)."""
    h = acq.head
    traj = acq.trajectory
    return Readout(int(h.flags), int(h.scan_counter or 0), h.acquisition_time_stamp,
                   float(h.sample_time_us or 0.0), int(h.discard_pre or 0), int(h.discard_post or 0),
                   int(traj.shape[0]) if traj is not None and traj.size else 0, acq.data)


def kind_flags(r: Readout, water_flags: tuple[str, ...] = DEFAULT_WATER_FLAGS) -> tuple[str, ...]:
    """mrsmon transient flags of a readout; Refused if it is not an MRS transient."""
    for name in NOT_MRS:
        if has_flag(r.flags, name):
            raise Refused("not_mrs", f"scan {r.scan_counter} is {name.lower().removeprefix('is_')} data, "
                                     "not an MRS transient")
    if r.trajectory_dims:
        raise Refused("not_mrs", f"scan {r.scan_counter} carries a {r.trajectory_dims}-D k-space trajectory: "
                                 "not single-voxel MRS")
    flags = []
    if has_flag(r.flags, "IS_NOISE_MEASUREMENT"):
        flags.append("noise")
    if has_flag(r.flags, "IS_DUMMYSCAN_DATA"):
        flags.append("dummy")
    if any(has_flag(r.flags, f) for f in water_flags) and not flags:
        flags.append("water_ref")
    return tuple(sorted(flags))


def samples(r: Readout) -> np.ndarray:
    """The readout's samples without the discarded ones, C-contiguous complex64 (coils, points)."""
    n = r.data.shape[1] if r.data.ndim == 2 else 0
    end = n - r.discard_post
    if r.data.ndim != 2 or r.discard_pre < 0 or end - r.discard_pre < 1:
        raise Refused("bad_shape", f"scan {r.scan_counter}: data of shape {r.data.shape} with "
                                   f"{r.discard_pre}+{r.discard_post} discarded samples leaves nothing")
    return np.ascontiguousarray(r.data[:, r.discard_pre:end], dtype=np.complex64)


def check_against_session(r: Readout, data: np.ndarray, coils: int, points: int, dwell_s: float) -> None:
    """Refused when the readout does not fit the session's shape, dwell or finiteness."""
    if data.shape != (coils, points):
        raise Refused("bad_shape", f"scan {r.scan_counter} has {data.shape[0]} channels x {data.shape[1]} "
                                   f"samples; the session has {coils} x {points}")
    if r.sample_time_us > 0 and abs(r.sample_time_us * 1e-6 / dwell_s - 1) > DWELL_TOLERANCE:
        raise Refused("bad_dwell", f"scan {r.scan_counter} has a dwell of {r.sample_time_us} µs; the session "
                                   f"has {dwell_s * 1e6:.4g} µs")
    if not np.isfinite(data.view(np.float32)).all():
        raise Refused("not_finite", f"scan {r.scan_counter} holds NaN or infinite samples")


def session_shape(r: Readout, data: np.ndarray, header_dwell_s: float | None = None) -> tuple[int, int, float]:
    """(coils, points, dwell_s) a session takes from its first transient; Refused if unusable. The dwell is
    the readout's sample time, else the header's (`header_dwell_s`, from its SpectralWidth parameter)."""
    coils, points = data.shape
    if not 1 <= coils <= MAX_COILS:
        raise Refused("bad_shape", f"scan {r.scan_counter} has {coils} channels; mrsmon takes 1 to {MAX_COILS}")
    if points < MIN_POINTS:
        raise Refused("bad_shape", f"scan {r.scan_counter} has {points} samples; mrsmon needs at least {MIN_POINTS}")
    if r.sample_time_us > 0:
        return coils, points, r.sample_time_us * 1e-6
    if header_dwell_s and header_dwell_s > 0:
        return coils, points, header_dwell_s
    raise Refused("bad_dwell", f"scan {r.scan_counter} has no sample time and the header no SpectralWidth")
