"""Draw docs/img/basis_3t_press30.png: simulated 3T PRESS TE 30 ms basis spectra.

    /work/venv/bin/python docs/figures/draw_basis.py [out.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mrs.basis import ppm_axis, to_spectrum  # noqa: E402
from mrs.basis_sim import simulate_basis  # noqa: E402

CF_MHZ = 123.2
BW_HZ, N = 4000.0, 4096
NAMES = ["NAA", "Glu", "Gln", "GABA", "mI"]
DISPLAY_LW_HZ = 3.0  # a little Lorentzian broadening for display


def main(out: Path) -> None:
    b = simulate_basis(CF_MHZ, "press", 0.030, 1 / BW_HZ, N, NAMES, linewidth_hz=DISPLAY_LW_HZ)
    ax_ppm = ppm_axis(N, 1 / BW_HZ, CF_MHZ, b.centre_ppm)
    keep = (ax_ppm > 0.5) & (ax_ppm < 4.2)
    fig, ax = plt.subplots(figsize=(9, 6.5), dpi=110)
    offset = 0.0
    for name in reversed(NAMES):
        spec = to_spectrum(b.fids[b.index(name)]).real[keep] / N * BW_HZ / CF_MHZ  # protons per ppm
        scale = 1.0 if name != "NAA" else 0.35
        ax.plot(ax_ppm[keep], offset + scale * spec, lw=1.0, color="k")
        label = name + (" (x0.35)" if scale != 1.0 else "")
        ax.text(1.3, offset + 0.08, label, fontsize=11, va="bottom")
        offset += 1.15 * max(scale * spec.max(), 1.0) - min(0.0, scale * spec.min())
    for ppm in (2.01, 2.04, 2.12, 2.35, 3.03, 3.56, 3.75):
        ax.axvline(ppm, color="0.85", lw=0.6, zorder=0)
    ax.set_xlim(4.2, 0.5)
    ax.set_xlabel("chemical shift (ppm)")
    ax.set_yticks([])
    ax.set_title("mrsmon density-matrix basis: 3T (123.2 MHz) PRESS TE 30 ms (TE1 = TE2), "
                 f"ideal pulses, {DISPLAY_LW_HZ:g} Hz display broadening", fontsize=10)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[1] / "img" / "basis_3t_press30.png"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
