"""A fit that converged to something implausible (no NAA, too little SNR, lines too broad, Glu CRLB
above 100 %): its values are not used as data."""

from mrs.qc import AlarmRule


def check(result, limit, history):
    if result.qc.fit_status != "implausible":
        return None
    why = f": {result.qc.message}" if result.qc.message else ""
    return f"Fit of block {result.block} implausible{why}"


RULE = AlarmRule("fit_implausible", "qc.fit_status", None, "amber", check)
