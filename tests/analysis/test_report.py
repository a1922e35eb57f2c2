"""The session report renders: HTML that parses, non-empty PNG figures, kit code only."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

from analysis.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


def test_report_renders_with_embedded_figures(stored_session, tmp_path):
    index = write_report(stored_session, tmp_path / "report")
    assert index == tmp_path / "report" / "index.html"
    parser = _Collect()
    parser.feed(index.read_text())
    parser.close()
    assert {"html", "table", "img", "h2"} <= set(parser.tags)
    assert len(parser.images) == 3
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png.startswith(PNG_MAGIC) and len(png) > 10_000
    for name in ("timecourse.png", "qc.png", "spectra.png"):
        data = (tmp_path / "report" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    text = " ".join(parser.text)
    assert "KIT-4711" in text and "mrsmon" in text and "Rejected transients" in text
    assert "placebo" not in text.lower() and "naltrexone" not in text.lower()
    assert "Glu/tCr" in text and "PRESS" in text


def test_report_of_a_refit_lists_its_settings(session_copy, tmp_path):
    from analysis.refit import refit

    out = refit(session_copy, block=16)
    index = write_report(session_copy, tmp_path / "r2", derivative=out.name)
    html = index.read_text()
    assert f"derivatives/{out.name}" in html and "refit settings" in html
