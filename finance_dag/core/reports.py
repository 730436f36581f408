"""Human-readable renderings for the UI and notebooks: markdown tables and figures."""

from __future__ import annotations

import base64
import html
import io
import threading
from datetime import date

import numpy as np
import polars as pl

from finance_dag.core import calendar


def format_cell(value: object, digits: int = 4) -> str:
    """A table cell as text: floats rounded to ``digits`` decimals (tiny ones in ``digits``
    significant figures), None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value else f"{round(value, digits)}"
    return str(value)


def markdown_table(frame: pl.DataFrame, max_rows: int = 100, digits: int = 4) -> str:
    """A GitHub-flavoured markdown table of the first ``max_rows`` rows."""
    if frame.is_empty():
        return "_no rows_"
    shown = frame.head(max_rows)
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"

    def cell(value: object) -> str:
        return format_cell(value, digits).replace("|", "\\|")

    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown.iter_rows()]
    more = [f"\n_{frame.height - max_rows} more rows_"] if frame.height > max_rows else []
    return "\n".join([header, rule, *rows, *more])


def html_table(frame: pl.DataFrame, digits: int = 4) -> str:
    """An HTML table of ``frame``, cells escaped and rounded like ``markdown_table``."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_cell(v, digits))}</td>" for v in row) + "</tr>"
        for row in frame.iter_rows()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def coverage_grid(
    daily: pl.DataFrame, max_sessions: int = 260
) -> tuple[list[date], list[str], np.ma.MaskedArray]:
    """Sessions, symbols and a symbols x sessions coverage grid for the heatmap.

    The sessions are every XNYS session from the first to the last date in ``daily`` (the
    latest ``max_sessions`` of them), so a session nobody materialised is a column too. A cell
    without a row is masked (not materialised); a row with no bars is coverage 0, not masked.
    """
    if daily.is_empty():
        return [], [], np.ma.masked_all((0, 0))
    first, last = daily["date"].min(), daily["date"].max()
    days = sorted(set(calendar.sessions(first, last)) | set(daily["date"].unique()))
    days = days[-max_sessions:] if max_sessions > 0 else days
    rows = (
        daily.filter(pl.col("date") >= days[0])
        .select("date", "symbol", coverage=pl.col("coverage").fill_null(0.0).fill_nan(0.0))
        .unique(["date", "symbol"], keep="last")
    )
    symbols = sorted(rows["symbol"].unique().to_list())
    column = {d: j for j, d in enumerate(days)}
    line = {s: i for i, s in enumerate(symbols)}
    grid = np.ma.masked_all((len(symbols), len(days)))
    grid[[line[s] for s in rows["symbol"]], [column[d] for d in rows["date"]]] = rows["coverage"].to_numpy()
    return days, symbols, grid


def coverage_heatmap_png(daily: pl.DataFrame, max_sessions: int = 260) -> bytes:
    """Symbols x sessions coverage heatmap (latest ``max_sessions`` sessions) as PNG bytes.

    Red to green is 50 % to 100 % coverage (below 50 % is the darkest red); grey marks
    sessions with no ``bar_coverage`` row for the symbol (not materialised). Sized so that a
    year (252 sessions) of 100 symbols keeps one readable 6.5 pt label per row.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import PercentFormatter

    days, symbols, grid = coverage_grid(daily, max_sessions)
    rows, cols = grid.shape
    row_inches = 0.115  # 8.3 pt per row for 6.5 pt labels
    width = min(16.0, max(7.0, 3.0 + 0.05 * cols))
    height = max(3.2, 1.9 + row_inches * rows)
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    cmap = colormaps["RdYlGn"].with_extremes(bad=_NOT_MATERIALISED)
    image = ax.imshow(
        grid if rows and cols else np.ma.masked_all((1, 1)),
        aspect="auto",
        cmap=cmap,
        vmin=0.5,
        vmax=1.0,
        interpolation="nearest",
    )
    ax.set_yticks(range(rows), symbols, fontsize=6.5)
    ticks, labels = _session_ticks(days)
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.tick_params(axis="y", length=0, pad=2)
    span = f"{days[0]} .. {days[-1]}, {cols} sessions" if days else "no sessions"
    ax.set_title(f"Regular-session coverage per symbol and session\n{span}", fontsize=9, loc="left")
    fig.legend(
        handles=[Patch(facecolor=_NOT_MATERIALISED, edgecolor="0.5", label="grey = not materialised")],
        loc="outside lower right",
        fontsize=7,
        frameon=False,
    )
    bar = fig.colorbar(image, ax=ax, extend="min", fraction=0.03, pad=0.01, format=PercentFormatter(1.0))
    bar.set_label("coverage (% of regular-session minutes)", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", pil_kwargs={"optimize": True})
    return buffer.getvalue()


_NOT_MATERIALISED = "#b8b8b8"


def _session_ticks(days: list[date]) -> tuple[list[int], list[str]]:
    """Tick positions and labels: the first session of each month, or a few dates when short."""
    if len(days) > 45:
        starts = [j for j, d in enumerate(days) if j == 0 or d.month != days[j - 1].month]
        return starts, [
            days[j].strftime("%b\n%Y" if j == starts[0] or days[j].month == 1 else "%b") for j in starts
        ]
    step = max(1, len(days) // 8)
    return list(range(0, len(days), step)), [d.strftime("%b %d") for d in days[::step]]


def line_chart_png(frame: pl.DataFrame, x: str, y: str, series: str, title: str) -> bytes:
    """One line per value of ``series`` (``y`` against ``x``) as PNG bytes, with a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4), dpi=80)
    for (name,), part in frame.drop_nulls(y).sort(x).group_by(series, maintain_order=True):
        ax.plot(part[x].to_list(), part[y].to_list(), label=str(name), linewidth=1.2)
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=3)
    fig.autofmt_xdate()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


class _StackedBars:
    """A horizontal stacked-bar figure drawn once and redrawn with new values: building the
    artists costs as much as rendering, and a digest backfill draws one chart per session."""

    def __init__(self, parts: tuple[tuple[str, str], ...], rows: int) -> None:
        from matplotlib.figure import Figure  # no pyplot: no global figure state, no backend switch

        self.figure = Figure(figsize=(7, 0.3 * rows + 1.2), dpi=72)
        self.ax = self.figure.subplots()
        names = [str(i) for i in range(rows)]
        self.bars = [self.ax.barh(names, [0.0] * rows, label=text, height=0.7) for _, text in parts]
        self.ax.axvline(0.0, color="grey", linewidth=0.6)
        self.ax.tick_params(labelsize=7)
        self.ax.legend(fontsize=7, loc="lower right")
        self.title = self.ax.set_title("", fontsize=9)
        self.figure.subplots_adjust(left=0.14, right=0.98, top=0.9, bottom=0.12)  # tight_layout: ~20 ms

    def png(self, names: list[str], values: list[list[float]], title: str) -> bytes:
        right, left = [0.0] * len(names), [0.0] * len(names)
        for bars, column in zip(self.bars, values, strict=True):
            for i, (patch, value) in enumerate(zip(bars.patches, column, strict=True)):
                patch.set_x(right[i] if value >= 0 else left[i])
                patch.set_width(value)
                right[i] += max(value, 0.0)
                left[i] += min(value, 0.0)
        self.ax.set_yticks(range(len(names)), names)
        self.ax.set_xlim(min(min(left), 0.0) - 0.1, max(max(right), 0.0) * 1.25 + 0.1)  # room for the legend
        self.title.set_text(title)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png")
        return buffer.getvalue()


_FIGURES: dict[tuple, _StackedBars] = {}
_FIGURES_LOCK = threading.Lock()


def stacked_bars_png(frame: pl.DataFrame, label: str, parts: dict[str, str], title: str) -> bytes:
    """One horizontal bar per row of ``frame`` (named by ``label``, first row on top), stacked
    from the columns of ``parts`` (column -> legend text; positive parts to the right of 0,
    negative ones to the left; a null counts as 0), as PNG bytes."""
    rows = frame.reverse()
    names = [str(v) for v in rows[label].to_list()]
    values = [[0.0 if v is None else float(v) for v in rows[c].to_list()] for c in parts]
    key = (tuple(parts.items()), len(names))
    with _FIGURES_LOCK:  # one figure per shape, redrawn under a lock (matplotlib is not thread-safe)
        if key not in _FIGURES:
            _FIGURES[key] = _StackedBars(key[0], len(names))
        return _FIGURES[key].png(names, values, title)


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI, so an image travels inside metadata, markdown or HTML."""
    return f"data:image/png;base64,{base64.b64encode(png).decode()}"


def png_markdown(alt: str, png: bytes) -> str:
    """Markdown showing ``png`` inline (the Dagster UI renders it in metadata)."""
    return f"![{alt}]({png_data_uri(png)})"
