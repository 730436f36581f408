"""Human-readable renderings for the UI and notebooks: markdown tables and figures."""

from __future__ import annotations

import io

import polars as pl


def markdown_table(frame: pl.DataFrame, max_rows: int = 100, digits: int = 4) -> str:
    """A GitHub-flavoured markdown table of the first ``max_rows`` rows."""
    if frame.is_empty():
        return "_no rows_"
    shown = frame.head(max_rows)
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"

    def cell(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.{digits}g}" if abs(value) < 1e-3 and value else f"{round(value, digits)}"
        return str(value).replace("|", "\\|")

    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown.iter_rows()]
    more = [f"\n_{frame.height - max_rows} more rows_"] if frame.height > max_rows else []
    return "\n".join([header, rule, *rows, *more])


def coverage_heatmap_png(daily: pl.DataFrame, max_sessions: int = 120) -> bytes:
    """Symbols x sessions coverage heatmap (latest ``max_sessions``) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = sorted(daily["date"].unique().to_list())[-max_sessions:]
    wide = (
        daily.filter(pl.col("date").is_in(days))
        .pivot(on="date", index="symbol", values="coverage", sort_columns=True)
        .sort("symbol")
    )
    values = wide.drop("symbol").to_numpy()
    height = max(3.0, 0.22 * wide.height + 1.5)
    fig, ax = plt.subplots(figsize=(min(16.0, 4 + 0.12 * len(days)), height), dpi=80)
    image = ax.imshow(values, aspect="auto", cmap="RdYlGn", vmin=0.5, vmax=1.0, interpolation="nearest")
    ax.set_yticks(range(wide.height), wide["symbol"].to_list(), fontsize=7)
    step = max(1, len(days) // 10)
    ax.set_xticks(
        range(0, len(days), step),
        [str(d) for d in days[::step]],
        rotation=45,
        ha="right",
        fontsize=7,
    )
    ax.set_title("Regular-session coverage per symbol and session")
    fig.colorbar(image, ax=ax, label="coverage")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
