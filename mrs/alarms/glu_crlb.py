"""Glutamate too uncertain to follow: its CRLB above the plan's limit. A Glu fitted at zero or below
has no finite CRLB (stored as null) and counts as beyond any limit."""

from mrs.qc import AlarmRule


def check(result, limit, history):
    if "Glu" not in result.crlb_pct:
        return None
    crlb = result.crlb_pct["Glu"]
    if crlb is not None and crlb <= limit:
        return None
    shown = "not finite" if crlb is None else f"{crlb:.0f}%"
    return f"Glutamate uncertain: CRLB {shown} (limit {limit:g}%)"


RULE = AlarmRule("glu_crlb", "crlb_pct.Glu", "glu_crlb_pct", "amber", check)
