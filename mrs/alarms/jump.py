"""A sudden frequency jump between two transients of the block (often motion)."""

from mrs.qc import AlarmRule, beyond


def check(result, limit, history):
    jump = result.qc.max_jump_hz
    if jump is None or not abs(jump) > limit:
        return None
    return f"Frequency jump of {beyond(jump, limit)} Hz in block {result.block} (limit {limit:g})"


RULE = AlarmRule("jump", "qc.max_jump_hz", "jump_hz", "amber", check)
