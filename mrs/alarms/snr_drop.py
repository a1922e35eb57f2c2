"""The signal dropped: the block's SNR more than `snr_drop_pct` percent below the session's start (the
median SNR of its first good blocks). A receive coil unplugged, the voxel no longer in the brain, the
participant moved or the shim lost: the glutamate curve is about to become noise."""

import statistics

from mrs.qc import AlarmRule

START_BLOCKS = 4   # the first good blocks (first publications) that set the session's SNR


def check(result, limit, history):
    start = [h.qc.snr for h in history if h.ok and not h.revision and h.qc.snr is not None][:START_BLOCKS]
    if result.qc.snr is None or len(start) < START_BLOCKS or result.block < START_BLOCKS:
        return None
    reference = statistics.median(start)
    drop_pct = 100.0 * (1.0 - result.qc.snr / reference)
    if not drop_pct > limit:
        return None
    return (f"Signal dropped: SNR {result.qc.snr:.0f} is {drop_pct:.0f}% below the session's start "
            f"({reference:.0f}; limit {limit:g}%): check the coil and the participant's position")


RULE = AlarmRule("snr_drop", "qc.snr", "snr_drop_pct", "amber", check)
