"""Draw docs/img/sim_transient_average_truth.png: one simulated transient, a 32-transient average and
the noise-free truth, coil-combined with the true optimal weights (ketamine-infusion plan, seed 3).

Each transient is corrected by its true frequency and phase (what alignment would do), so the figure
shows the forward model's lineshape, background and noise rather than drift.
Run: /work/venv/bin/python docs/figures/sim_transient_average_truth.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mrs.basis import ppm_axis, to_spectrum  # noqa: E402
from protocols.plan import load_plan  # noqa: E402
from simulator.forward import SessionSimulator  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "img" / "sim_transient_average_truth.png"


def main() -> int:
    plan = load_plan("ketamine-infusion")
    sim = SessionSimulator(plan, seed=3)
    t = sim.t
    start = 40  # metabolite transients 40..71, away from motion
    singles, truths = [], []
    for scan in sim.scans():
        if scan.kind != "metabolite":
            continue
        j = scan.index - sim.kinds.index("metabolite")
        if j < start:
            continue
        if j >= start + 32:
            break
        w = sim.coil_array_at(scan.index).optimal_weights()
        comb = w.conj() @ scan.data.astype(complex)
        undo = np.exp(-2j * np.pi * sim.freq_hz[scan.index] * t - 1j * np.deg2rad(sim.phase_deg[scan.index]))
        singles.append(comb * undo)
        truths.append(sim.voxel_signal(scan.index) * undo)
    ppm = ppm_axis(sim.points, sim.dwell_s, sim.cf_mhz)
    single = to_spectrum(singles[0]).real
    avg = to_spectrum(np.mean(singles, axis=0)).real
    truth = to_spectrum(np.mean(truths, axis=0)).real
    band = (ppm > 0.2) & (ppm < 4.4)
    scale = truth[band].max()
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    ax.plot(ppm[band], single[band] / scale + 1.6, lw=0.7, color="0.45", label="single transient")
    ax.plot(ppm[band], avg[band] / scale + 0.6, lw=0.9, color="tab:blue", label="average of 32")
    ax.plot(ppm[band], truth[band] / scale, lw=1.0, color="tab:red", label="noise-free truth (32-mean)")
    ax.set_xlim(4.4, 0.2)
    ax.set_xlabel("chemical shift (ppm)")
    ax.set_ylabel("real part, scaled to truth max (offsets for clarity)")
    ax.set_yticks([])
    ax.set_title(f"simulator: {plan.name}, seed 3, {sim.n_coils} coils, "
                 f"SNR(NAA, single) = {sim.cfg['snr_naa_single']:g}, FWHM {sim.linewidth_hz:g} Hz")
    ax.legend(loc="upper left", frameon=False)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
