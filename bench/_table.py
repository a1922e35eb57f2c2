"""Print a benchmark table and keep it under bench/results/."""

from __future__ import annotations

import platform
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def write_table(name: str, title: str, header: list[str], rows: list[list], notes: str = "") -> str:
    widths = [max(len(str(h)), *(len(_fmt(r[i])) for r in rows)) for i, h in enumerate(header)]
    lines = [f"# {title}", f"# {time.strftime('%Y-%m-%d %H:%M')} on {platform.node() or 'host'} "
             f"({platform.machine()}, Python {platform.python_version()})"]
    lines.append("  ".join(str(h).rjust(w) for h, w in zip(header, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(_fmt(v).rjust(w) for v, w in zip(r, widths)) for r in rows]
    if notes:
        lines += ["", notes]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.txt").write_text(text)
    return text


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)
