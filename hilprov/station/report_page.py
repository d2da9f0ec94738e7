"""The line report as one self-contained HTML page: tables of the figures and three charts drawn
by matplotlib and inlined as SVG (text drawn as paths), so the page needs no network, no font and
no script to be read anywhere. matplotlib is the optional `report` extra.
"""

from __future__ import annotations

import html
import io
import math
import re
from datetime import datetime, timedelta
from pathlib import Path

from hilprov.errors import UsageError
from hilprov.station.report import step_seconds, when

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
          "#bcbd22", "#7f7f7f", "#d62728")
SLOW = "#d62728"

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 1em 0; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35em 0.6em; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
tr.line td { font-weight: bold; border-top: 2px solid #999; }
.kpis { display: flex; gap: 1em; flex-wrap: wrap; }
.kpi { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; min-width: 9em; }
.kpi b { display: block; font-size: 1.8em; }
figure { margin: 1.5em 0; } figure svg { width: 100%; height: auto; }
td.when { white-space: nowrap; } #failed-units th { text-align: left; }
figcaption { font-weight: bold; margin-bottom: 0.3em; }
td.error { max-width: 32em; text-align: left; font-size: 0.9em; }
"""


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError("hilprov report --html draws its charts with matplotlib: pip install "
                         "'hilprov[report]' (or use --json)") from None
    matplotlib.rcParams.update({"svg.fonttype": "path", "font.size": 10})
    return matplotlib, Figure


def _svg(fig, name: str) -> str:
    """The figure as an inline <svg> element, ids unique to this chart."""
    matplotlib, _ = _matplotlib()
    out = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": name}):
        fig.savefig(out, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = out.getvalue()
    svg = _own_ids(text[text.index("<svg"):], name)
    return svg.replace("<svg", f'<svg role="img" aria-label="{html.escape(name)}" '
                       f'data-chart="{html.escape(name)}"', 1)


def _own_ids(svg: str, prefix: str) -> str:
    """Every id of one chart (glyphs, clip paths, groups) prefixed with its name: three charts
    in one page share no id."""
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r'\bhref="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    return re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def units_per_hour_chart(report: dict) -> str:
    _, Figure = _matplotlib()
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9, 3.4))
    ax = fig.subplots()
    hours = report["hourly"]
    stations = list(report["stations"])
    if not hours:
        _empty(ax, "no attempts in this window")
    else:
        import matplotlib.dates as mdates

        starts = [when(h["hour"]) for h in hours]
        width = timedelta(minutes=48)
        bottom = [0] * len(hours)
        for index, station in enumerate(stations):
            counts = [h["by_station"].get(station, 0) for h in hours]
            ax.bar([s + timedelta(minutes=30) for s in starts], counts, width=width,
                   bottom=bottom, label=station, color=COLORS[index % len(COLORS)])
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        ax.plot([s + timedelta(minutes=30) for s in starts], [h["attempts"] for h in hours],
                color="#444", marker="o", linestyle="--", linewidth=1, label="attempts")
        span = (starts[-1] - starts[0]).total_seconds() / 3600 + 1
        ax.xaxis.set_major_locator(mdates.HourLocator(interval=max(1, round(span / 12))))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M\n%d %b"))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("units registered per hour")
        ax.set_xlabel("hour (UTC)")
        ax.legend(loc="upper left", fontsize=8, ncols=min(len(stations) + 1, 6))
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(0, max([*bottom, *(h["attempts"] for h in hours)]) * 1.25 + 0.5)
    return _svg(fig, "units-per-hour")


def pareto_chart(report: dict) -> str:
    _, Figure = _matplotlib()
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9, 3.4))
    ax = fig.subplots()
    failures = report["failures"]
    if not failures:
        _empty(ax, "no failed attempts")
        return _svg(fig, "failures-pareto")
    kinds, counts = list(failures), list(failures.values())
    total = sum(counts)
    ax.bar(kinds, counts, color=COLORS[0])
    for x, count in enumerate(counts):
        ax.annotate(str(count), (x, count), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("failed attempts")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max(counts) * 1.2)
    share = ax.twinx()
    running, cumulative = 0, []
    for count in counts:
        running += count
        cumulative.append(100 * running / total)
    share.plot(kinds, cumulative, color=SLOW, marker="o")
    share.set_ylim(0, 105)
    share.set_ylabel("cumulative %")
    share.axhline(80, color="#999", linestyle=":", linewidth=1)
    ax.tick_params(axis="x", labelrotation=20)
    return _svg(fig, "failures-pareto")


def step_time_chart(report: dict, rows: list[dict]) -> str:
    _, Figure = _matplotlib()
    seconds = step_seconds(rows)
    fig = Figure(figsize=(9, 0.45 * max(len(seconds), 4) + 1.2))
    ax = fig.subplots()
    if not seconds:
        _empty(ax, "no step ran in this window")
        return _svg(fig, "time-per-step")
    names = list(seconds)[::-1]  # the flow's first step on top
    slowest = max(seconds, key=lambda n: report["steps"][n]["median"])
    boxes = ax.boxplot([seconds[n] for n in names], orientation="horizontal",
                       tick_labels=names, patch_artist=True, widths=0.6,
                       medianprops={"color": "#111"})
    for name, box, label in zip(names, boxes["boxes"], ax.get_yticklabels(), strict=True):
        box.set_facecolor(SLOW if name == slowest else "#aec7e8")
        if name == slowest:  # the name too: a box whose runs all took the same time is a line
            label.set_color(SLOW)
    low = min(min(v) for v in seconds.values())
    high = max(max(v) for v in seconds.values())
    if high > 0 and (low <= 0 or high / max(low, 1e-3) > 50):
        # linear only below the decade of the quickest step, so every decade above gets a tick
        quickest = min((x for v in seconds.values() for x in v if x > 0), default=0.1)
        ax.set_xscale("symlog", linthresh=10 ** math.floor(math.log10(max(quickest, 1e-3))))
    ax.set_xlim(left=0)  # durations: nothing below zero to show
    ax.set_xlabel("seconds (the slowest step by median in red)")
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig, "time-per-step")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _figures_table(report: dict) -> str:
    head = ("<tr><th>station</th><th>attempts</th><th>units</th><th>registered</th>"
            "<th>first-pass yield</th><th>final yield</th><th>failed before the endpoint "
            "was read</th><th>in progress</th></tr>")
    body = []
    groups = [(name, fig, "") for name, fig in report["stations"].items()]
    groups.append(("line", report, ' class="line"'))
    for name, fig, cls in groups:
        body.append(f"<tr{cls}><td>{html.escape(name)}</td><td>{fig['attempts']}</td>"
                    f"<td>{fig['units']}</td><td>{fig['registered']}</td>"
                    f"<td>{_pct(fig['first_pass_yield'])}</td><td>{_pct(fig['final_yield'])}</td>"
                    f"<td>{fig['attempts_without_unit']}</td><td>{fig['in_progress']}</td></tr>")
    return f'<table id="figures">{head}{"".join(body)}</table>'


def _failed_table(report: dict) -> str:
    units = report["failed_units"]
    if not units:
        return '<p id="failed-units">No failed unit in this window.</p>'
    head = ("<tr><th>unit (endpoint)</th><th>attempts</th><th>station</th><th>board</th>"
            "<th>started (UTC)</th><th>step</th><th>error</th><th>serial log</th></tr>")
    body = []
    for unit in units:
        log = unit["log"]
        link = (f'<a href="{html.escape(Path(log).resolve().as_uri())}">log</a>' if log
                else "–")
        body.append(
            f'<tr><td class="text">{html.escape(unit["endpoint"] or "(not read)")}</td>'
            f"<td>{unit['attempts']}</td><td class=\"text\">{html.escape(unit['station'])}</td>"
            f"<td class=\"text\">{html.escape(unit['board'])}</td>"
            f"<td class=\"when\">{html.escape((unit['started_at'] or '')[:16].replace('T', ' '))}"
            "</td>"
            f"<td class=\"text\">{html.escape(unit['step'] or '–')}</td>"
            f'<td class="error"><b>{html.escape(unit["error_kind"])}</b>: '
            f"{html.escape(unit['error'] or '')}</td><td>{link}</td></tr>")
    return f'<table id="failed-units">{head}{"".join(body)}</table>'


def _kpis(report: dict) -> str:
    items = [("units provisioned", str(report["registered"])),
             ("first-pass yield", _pct(report["first_pass_yield"])),
             ("final yield", _pct(report["final_yield"])),
             ("attempts", str(report["attempts"])),
             ("stations", str(len(report["stations"])))]
    return '<div class="kpis">' + "".join(
        f'<div class="kpi"><b>{html.escape(value)}</b>{html.escape(label)}</div>'
        for label, value in items) + "</div>"


def page(report: dict, rows: list[dict], *, source: str) -> str:
    """The whole page (`source`: the records database, as messages name it)."""
    since = report["since"]
    window = f"since {since[:16].replace('T', ' ')} UTC" if since else "all records"
    stamp = datetime.fromisoformat(report["generated_at"]).strftime("%Y-%m-%d %H:%M UTC")
    charts = [("units-per-hour", "Units per hour over the shift", units_per_hour_chart(report)),
              ("failures-pareto", "Failures by kind (Pareto)", pareto_chart(report)),
              ("time-per-step", "Time per step", step_time_chart(report, rows))]
    figures = "".join(f'<figure id="{name}"><figcaption>{html.escape(title)}</figcaption>'
                      f"{svg}</figure>" for name, title, svg in charts)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>hilprov line report – {html.escape(window)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Line report</h1><p class=\"meta\">{html.escape(window)} · records "
        f"{html.escape(source)} · made {html.escape(stamp)}</p>"
        f"{_kpis(report)}<h2>Per station</h2>{_figures_table(report)}"
        f"<h2>Charts</h2>{figures}<h2>Failed units</h2>{_failed_table(report)}"
        "</body></html>\n")
