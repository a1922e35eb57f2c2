"""Colours and fonts of the operator display: dark and light themes on the Okabe-Ito palette.

Okabe-Ito is distinguishable with the common colour-vision deficiencies; the traffic light also
carries a word (OK / CHECK / STOP), so it never depends on colour alone.
"""

from __future__ import annotations

from dataclasses import dataclass

OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
COMPONENT_CYCLE = ("#56B4E9", "#E69F00", "#009E73", "#CC79A7", "#F0E442", "#0072B2", "#D55E00")


@dataclass(frozen=True)
class Theme:
    name: str
    background: str
    panel: str
    text: str
    muted: str
    grid_alpha: float
    data: str         # block points of the main curve
    trend: str
    baseline: str
    band: str         # baseline band fill (with alpha)
    phase_fills: tuple[str, ...]
    event: str
    planned: str
    spec_data: str
    spec_fit: str
    spec_residual: str
    spec_baseline: str
    threshold: str
    light: dict[str, str]
    light_text: dict[str, str]
    button: str
    button_text: str

    def rgba(self, hex_colour: str, alpha: int) -> tuple[int, int, int, int]:
        h = hex_colour.lstrip("#")
        return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), alpha)

    def on_background(self, hex_colour: str, alpha: int) -> tuple[int, int, int, int]:
        """The opaque colour that `hex_colour` at `alpha` shows over the plot background: the
        same look as the translucent fill, but Qt fills opaque areas several times faster."""
        fg, bg = self.rgba(hex_colour, alpha), self.rgba(self.background, 255)
        return (*(round(b + (f - b) * alpha / 255) for f, b in zip(fg[:3], bg[:3])), 255)


DARK = Theme(
    name="dark", background="#15181c", panel="#1f242a", text="#e8e8e8", muted="#9aa3ad",
    grid_alpha=0.18, data=OKABE_ITO["sky"], trend=OKABE_ITO["orange"], baseline="#c8c8c8",
    band="#c8c8c8", phase_fills=("#56B4E9", "#E69F00", "#CC79A7", "#009E73"), event=OKABE_ITO["yellow"],
    planned="#7d8791", spec_data="#d9d9d9", spec_fit=OKABE_ITO["orange"], spec_residual=OKABE_ITO["purple"],
    spec_baseline=OKABE_ITO["sky"], threshold=OKABE_ITO["vermillion"],
    light={"green": OKABE_ITO["green"], "amber": OKABE_ITO["orange"], "red": OKABE_ITO["vermillion"],
           "grey": "#5f6770"},
    light_text={"green": "#ffffff", "amber": "#000000", "red": "#ffffff", "grey": "#ffffff"},
    button="#2b3138", button_text="#f0f0f0",
)

LIGHT = Theme(
    name="light", background="#fbfbfb", panel="#eef0f2", text="#111111", muted="#555c63",
    grid_alpha=0.22, data=OKABE_ITO["blue"], trend=OKABE_ITO["vermillion"], baseline="#444444",
    band="#555555", phase_fills=("#56B4E9", "#E69F00", "#CC79A7", "#009E73"), event="#8a6d00",
    planned="#8c8c8c", spec_data="#222222", spec_fit=OKABE_ITO["vermillion"], spec_residual=OKABE_ITO["purple"],
    spec_baseline=OKABE_ITO["blue"], threshold=OKABE_ITO["vermillion"],
    light={"green": OKABE_ITO["green"], "amber": OKABE_ITO["orange"], "red": OKABE_ITO["vermillion"],
           "grey": "#8a9299"},
    light_text={"green": "#ffffff", "amber": "#000000", "red": "#ffffff", "grey": "#ffffff"},
    button="#e1e4e8", button_text="#111111",
)

THEMES = {"dark": DARK, "light": LIGHT}

# Point sizes: the status strip is read from 2 m away.
STATUS_PT = 22
STATUS_SMALL_PT = 15
AXIS_PT = 12
TITLE_PT = 13
BUTTON_PT = 13


def theme(name: str) -> Theme:
    try:
        return THEMES[name]
    except KeyError:
        raise ValueError(f"unknown theme {name!r}; choose {' or '.join(THEMES)}") from None


def stylesheet(t: Theme) -> str:
    """Qt style sheet for the non-plot widgets of a theme."""
    return f"""
    QMainWindow, QDialog, QMenu, QMessageBox {{ background: {t.background}; }}
    QWidget {{ color: {t.text}; font-size: {BUTTON_PT}pt; }}
    QFrame#strip {{ background: {t.panel}; border-radius: 6px; }}
    QPushButton {{ background: {t.button}; color: {t.button_text}; border: 1px solid {t.muted};
                   border-radius: 5px; padding: 6px 10px; }}
    QPushButton:hover {{ border: 1px solid {t.text}; }}
    QPushButton:disabled {{ color: {t.muted}; border: 1px solid {t.panel}; }}
    QComboBox {{ background: {t.button}; color: {t.button_text}; border: 1px solid {t.muted};
                 border-radius: 4px; padding: 3px 8px; }}
    QLabel#muted {{ color: {t.muted}; }}
    QMenuBar, QMenu {{ background: {t.panel}; color: {t.text}; }}
    QToolTip {{ background: {t.panel}; color: {t.text}; border: 1px solid {t.muted}; }}
    """

