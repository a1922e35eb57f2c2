"""Lines broader than the plan allows (shim degrading, motion)."""

from mrs.qc import AlarmRule, beyond


def check(result, limit, history):
    fwhm = result.qc.naa_fwhm_hz
    if fwhm is None or not fwhm > limit:
        return None
    return f"Lines broadening: NAA width {beyond(fwhm, limit)} Hz (limit {limit:g})"


RULE = AlarmRule("naa_fwhm", "qc.naa_fwhm_hz", "naa_fwhm_hz", "amber", check)
