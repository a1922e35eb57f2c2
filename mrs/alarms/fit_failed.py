"""A block whose fit failed (or that could not be fitted at all) gives no glutamate value."""

from mrs.qc import AlarmRule


def check(result, limit, history):
    if result.qc.fit_status != "failed":
        return None
    why = f": {result.qc.message}" if result.qc.message else ""
    return f"Fit failed on block {result.block}{why}"


RULE = AlarmRule("fit_failed", "qc.fit_status", None, "red", check)
