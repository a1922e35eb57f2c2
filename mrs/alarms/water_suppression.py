"""Water suppression poor: the residual water more than `residual_water` times the NAA peak
(`qc.residual_water`). The pipeline removes the water (and keeps it out of the eddy-current correction),
but the truth sets, other groups' spectra with residual water up to 30-50x NAA, are where the fit is known
to be sound; beyond that it has been measured only with water lines added to spectra, and a scanner's
failed suppression brings sidebands and a baseline roll besides (docs/fitting.md: QC). The remedy is on
the scanner, so the technician is told; nothing is refused."""

from mrs.qc import AlarmRule, beyond


def check(result, limit, history):
    water = result.qc.residual_water
    if water is None or not water > limit:
        return None
    return (f"Water suppression poor: residual water {beyond(water, limit)}x the NAA peak (limit {limit:g}): "
            f"readjust the water suppression when the protocol allows")


RULE = AlarmRule("water_suppression", "qc.residual_water", "residual_water", "amber", check)
