"""Water suppression poor: the residual water more than `residual_water` times the tallest metabolite peak
(`qc.residual_water`). The fit removes it, but the truth sets and the ISMRM fitting challenge's data were
fitted sound only up to about 50x NAA; beyond, the eddy-current correction multiplies the water by the
water reference's noise and Glu/tCr moved by up to 37 % at 300x (docs/fitting.md). On the scanner the
remedy is a readjusted suppression (its frequency or flip angle), not anything done afterwards."""

from mrs.qc import AlarmRule, beyond


def check(result, limit, history):
    water = result.qc.residual_water
    if water is None or not water > limit:
        return None
    return (f"Water suppression poor: residual water {beyond(water, limit)}x the NAA peak (limit {limit:g}): "
            f"readjust the water suppression when the protocol allows")


RULE = AlarmRule("water_suppression", "qc.residual_water", "residual_water", "amber", check)
