"""The gap report for planners as one HTML page or a PDF: the ranked table of people
without service per area and network, and a chart of people cut off over time.

Charts are drawn with matplotlib (Agg, SVG and PDF backends; nothing is fetched): the
HTML page carries its chart as inline SVG and works offline.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dcm.errors import Conflict, ParameterError

#: Columns of the printed table: (gap report column, heading).
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("area_name", "District"),
    ("network", "Network"),
    ("people", "People without service"),
    ("since", "Since (UTC)"),
    ("cells_offline", "Cells offline"),
    ("area_km2", "Outage km²"),
    ("trend", "Trend"),
)
#: Formats :func:`write_gap_report` writes, by file suffix.
REPORT_FORMATS = {".html": "html", ".htm": "html", ".pdf": "pdf"}

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em;margin-bottom:.2em} p.meta{color:#555;margin-top:0}
table{border-collapse:collapse;margin:1em 0;font-size:.95em}
th,td{border-bottom:1px solid #ccc;padding:.3em .8em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0} figcaption{color:#555;font-size:.9em}
"""


def network_label(network: str) -> str:
    """How a network key reads in a report (``"all"``: no network serves)."""
    return "no network" if network == "all" else str(network)


def table_rows(report: pd.DataFrame) -> list[list[str]]:
    """The gap report (``dcm.live.GAP_COLUMNS``, ranked) as printed cells, in order."""
    rows = []
    for rec in report.to_dict(orient="records"):
        since = rec.get("since")
        rows.append(
            [
                str(rec.get("area_name") or rec.get("area_id")),
                network_label(str(rec["network"])),
                "–" if pd.isna(rec["people"]) else f"{rec['people']:,.0f}",
                "–" if since is None or pd.isna(since) else f"{pd.Timestamp(since):%Y-%m-%d %H:%M}",
                f"{int(rec['cells_offline']):d}",
                f"{rec['area_km2']:,.1f}",
                str(rec.get("trend") or ""),
            ]
        )
    return rows


def _figure(history: pd.DataFrame, *, title: str) -> Any:
    """Matplotlib figure of people cut off per network over time (one line each)."""
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax = fig.add_subplot()
    if history.empty or history["people"].isna().all():
        ax.text(0.5, 0.5, "no confirmed outages in the windows computed", ha="center")
        ax.set_axis_off()
        return fig
    for network, group in history.groupby("network", sort=True):
        times = pd.to_datetime(group["window_start"], utc=True).dt.tz_localize(None)
        style = {"color": "black", "linestyle": "--"} if network == "all" else {}
        ax.step(times, group["people"], where="post", label=network_label(str(network)), **style)
    ax.set_ylabel("people without service")
    ax.set_xlabel("window start (UTC)")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(DateFormatter("%d %b %H:%M"))
    ax.grid(alpha=0.3)
    ax.legend(title="network", loc="upper right", fontsize="small")
    ax.set_title(title, fontsize="medium")
    return fig


def chart_svg(history: pd.DataFrame, *, title: str = "People cut off over time") -> str:
    """The chart as an SVG document (text), for inlining in HTML."""
    fig = _figure(history, title=title)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype inside HTML


def render_gap_report(
    report: pd.DataFrame,
    history: pd.DataFrame,
    *,
    event: str,
    window: tuple[pd.Timestamp, pd.Timestamp] | None,
    generated: pd.Timestamp,
) -> str:
    """One self-contained HTML page: heading, the ranked table and the chart."""
    esc = html.escape
    when = (
        f"window {window[0]:%Y-%m-%d %H:%M}–{window[1]:%H:%M} UTC"
        if window is not None
        else "no window computed"
    )
    head = "".join(f"<th>{esc(h)}</th>" for _, h in TABLE_COLUMNS)
    numeric = {2, 4, 5}
    body = "\n".join(
        "<tr>"
        + "".join(
            f'<td class="n">{esc(v)}</td>' if i in numeric else f"<td>{esc(v)}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in table_rows(report)
    )
    table = (
        f'<table id="gaps"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'
        if len(report)
        else "<p>No confirmed outage in this window: nobody is known to be without service.</p>"
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>Gap report — {esc(event)}</title>'
        f"<style>{_STYLE}</style></head><body>\n"
        f"<h1>Gap report — {esc(event)}</h1>\n"
        f'<p class="meta">{esc(when)}; generated {generated:%Y-%m-%d %H:%M} UTC. People '
        "without service per district and network, most first; network “no network”: "
        "places no network serves. Counted from confirmed outages.</p>\n"
        f"{table}\n"
        f'<figure id="chart">{chart_svg(history)}'
        "<figcaption>People without service per network, window by window (confirmed "
        "outages; “no network”: nobody serves).</figcaption></figure>\n"
        "</body></html>\n"
    )


def gap_report_pdf(
    report: pd.DataFrame,
    history: pd.DataFrame,
    *,
    event: str,
    window: tuple[pd.Timestamp, pd.Timestamp] | None,
    generated: pd.Timestamp,
    rows_per_page: int = 30,
) -> bytes:
    """The same report as a PDF (matplotlib's PDF backend): table pages, then the chart."""
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    when = (
        f"window {window[0]:%Y-%m-%d %H:%M}–{window[1]:%H:%M} UTC"
        if window is not None
        else "no window computed"
    )
    rows = table_rows(report)
    chunks: Sequence[list[list[str]]] = [
        rows[i : i + rows_per_page] for i in range(0, len(rows), rows_per_page)
    ] or [[]]
    buf = io.BytesIO()
    with PdfPages(buf, metadata={"Title": f"Gap report — {event}", "Creator": "dcm"}) as pdf:
        for n, chunk in enumerate(chunks, 1):
            fig = Figure(figsize=(11.69, 8.27))  # A4 landscape
            fig.text(0.05, 0.95, f"Gap report — {event}", fontsize=16, weight="bold")
            fig.text(
                0.05,
                0.915,
                f"{when}; generated {generated:%Y-%m-%d %H:%M} UTC; page {n} of {len(chunks) + 1}",
                fontsize=10,
                color="#555",
            )
            ax = fig.add_axes((0.05, 0.05, 0.9, 0.83))
            ax.set_axis_off()
            if chunk:
                table = ax.table(
                    cellText=chunk,
                    colLabels=[h for _, h in TABLE_COLUMNS],
                    loc="upper left",
                    cellLoc="left",
                )
                table.auto_set_font_size(False)
                table.set_fontsize(9)
                table.scale(1, 1.3)
            else:
                ax.text(0, 0.95, "No confirmed outage in this window.", fontsize=11)
            pdf.savefig(fig)
        pdf.savefig(_figure(history, title=f"People cut off over time — {event}"))
    return buf.getvalue()


def write_gap_report(
    report: pd.DataFrame,
    history: pd.DataFrame,
    path: str | Path,
    *,
    event: str,
    window: tuple[pd.Timestamp, pd.Timestamp] | None,
    generated: pd.Timestamp | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the report as HTML or PDF, by ``path``'s suffix (.html, .htm, .pdf).

    Refuses (:class:`~dcm.errors.Conflict`) to replace a file unless ``overwrite``.
    """
    out = Path(path)
    kind = REPORT_FORMATS.get(out.suffix.lower())
    if kind is None:
        raise ParameterError(
            f"{out}: unknown report format {out.suffix or '(no suffix)'!r} "
            f"(use {', '.join(sorted(REPORT_FORMATS))})"
        )
    if out.exists() and not overwrite:
        raise Conflict(f"{out} exists; use --overwrite to replace it")
    if not out.parent.is_dir():
        raise ParameterError(f"{out}: folder {out.parent} does not exist")
    stamp = generated if generated is not None else pd.Timestamp.now(tz="UTC")
    args = {"event": event, "window": window, "generated": stamp}
    if kind == "html":
        out.write_text(render_gap_report(report, history, **args), encoding="utf-8")
    else:
        out.write_bytes(gap_report_pdf(report, history, **args))
    return out
