"""The data arrive mirrored: the NAA, Cr and Cho singlets of the block average sit at their mirror
images about the receiver, so the scanner (or the bridge) sends the complex conjugate of the NIfTI-MRS
convention. Every fit of such data is meaningless; the fix is a setting, not the participant."""

from mrs.qc import AlarmRule


def check(result, limit, history):
    if result.qc.mirrored is not True:
        return None
    return ("The spectrum arrives mirrored (NAA, Cr and Cho at their mirror images): the sender uses the "
            "conjugate convention. Set --conjugate yes on the bridge or replay, or fix the scanner's export; "
            "these fits are not valid")


RULE = AlarmRule("mirrored", "qc.mirrored", None, "red", check)
