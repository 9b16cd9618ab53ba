"""``dcm report``: the gap report for planners as HTML (table + inline chart) and PDF,
on a hand-made live store whose figures are worked out in tests/gapstore.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from .. import gapstore
from .livedata import run


class _Table(HTMLParser):
    """Rows of the page's ``<table id="gaps">`` body, as cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(page: str) -> list[list[str]]:
    parser = _Table()
    parser.feed(page)
    return parser.rows


@pytest.fixture
def hand_store(data_dir: Path) -> Path:
    gapstore.build(data_dir).close()
    return data_dir


def test_html_report_ranks_districts_with_hand_checked_figures(
    hand_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gaps.html"
    code, text, err = run(["report", "--event", "isle", "--out", str(out)], capsys)
    assert code == 0, err
    assert "window 2021-04-09T21:00Z, 3 row(s)" in text
    page = out.read_text(encoding="utf-8")
    # District, network, people, since, cells offline, km², trend; most people first.
    # East's outages began at W1 (21:00), West's at T0 (20:00).
    assert [row[:5] for row in table_rows(page)] == [
        ["West", "360-100", "300", "2021-04-09 20:00", "1"],
        ["East", "360-100", "100", "2021-04-09 21:00", "2"],
        ["East", "no network", "50", "2021-04-09 21:00", "2"],
    ]
    # The chart is inline SVG (nothing fetched), one line per network.
    chart = re.search(r'<figure id="chart">(<svg.*?</svg>)', page, re.S)
    assert chart and "http://www.w3.org/2000/svg" in chart.group(1)
    assert "360-100" in chart.group(1) and "no network" in chart.group(1)
    assert not re.search(r'(src|href)="https?://', page)


def test_report_at_an_earlier_window_and_as_pdf(
    hand_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html_out = tmp_path / "early.html"
    code, _, err = run(
        ["report", "--event", "isle", "--at", "2021-04-09T20:30:00Z", "--out", str(html_out)],
        capsys,
    )
    assert code == 0, err
    assert [r[:4] for r in table_rows(html_out.read_text(encoding="utf-8"))] == [
        ["West", "360-100", "300", "2021-04-09 20:00"]
    ]
    pdf = tmp_path / "gaps.pdf"
    code, _, err = run(["report", "--event", "isle", "--out", str(pdf)], capsys)
    assert code == 0, err
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    # A table page and a chart page.
    assert len(re.findall(rb"/Type\s*/Page\b", data)) == 2


def test_report_errors_are_one_clear_line(
    hand_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["report", "--event", "nope", "--out", str(tmp_path / "x.html")], capsys)
    assert code == 3
    assert err.strip() == "dcm: error: no event 'nope'"
    assert not (tmp_path / "x.html").exists()
    code, _, err = run(["report", "--event", "isle", "--out", str(tmp_path / "x.txt")], capsys)
    assert code == 2 and "unknown report format '.txt'" in err and "Traceback" not in err
    out = tmp_path / "same.html"
    out.write_text("keep")
    code, _, err = run(["report", "--event", "isle", "--out", str(out)], capsys)
    assert code == 2 and "use --overwrite" in err and out.read_text() == "keep"
    code, _, _ = run(["report", "--event", "isle", "--out", str(out), "--overwrite"], capsys)
    assert code == 0 and out.read_text().startswith("<!DOCTYPE html>")
