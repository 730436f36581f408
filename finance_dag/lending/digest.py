"""The daily lending digest: headlines written from the data, the market summary, the top squeeze
candidates and the biggest factor moves, with a plot of what drives the top scores, as markdown
and as self-contained HTML (the plot embedded as a PNG data URI in both).

``daily_digest(day, today, before, squeeze)`` takes the session's and the previous session's
snapshot and factors (``Day`` bundles them; the factors may include the extended ones) and that
session's SSR v4 scores, and returns a ``Digest`` whose headlines are sentences built from the
numbers (never fixed strings).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date

import polars as pl

from finance_dag.core.reports import html_table, markdown_table, png_data_uri, stacked_bars_png
from finance_dag.lending.squeeze import LABELS

TOP = 10
SHOCK_SD = 3.0  # a borrow-cost shock at least this many sd is news


@dataclass(frozen=True)
class Day:
    """One session's validated snapshot and its factors (core, and extended when given)."""

    snapshot: pl.DataFrame
    factors: pl.DataFrame


@dataclass(frozen=True)
class Digest:
    day: date
    headlines: list[str]
    summary: pl.DataFrame  # metric, today, previous, change
    top: pl.DataFrame  # the top squeeze candidates and why
    moves: pl.DataFrame  # per factor, the name that moved most since the previous session
    plot: bytes  # PNG: each top candidate's SSR v4 contributions
    markdown: str
    html: str


def market_summary(today: pl.DataFrame, before: pl.DataFrame | None) -> pl.DataFrame:
    """Average fee (bps) and utilisation (%) over the names, with the day-over-day change."""
    rows = []
    for metric, column in (("average fee (bps)", "fee_bps"), ("average utilisation (%)", "utilization_pct")):
        now = float(today[column].mean())
        prev = float(before[column].mean()) if before is not None and before.height else None
        rows.append(
            (
                metric,
                round(now, 2),
                None if prev is None else round(prev, 2),
                None if prev is None else round(now - prev, 2),
            )
        )
    return pl.DataFrame(rows, schema=["metric", "today", "previous", "change"], orient="row")


def factor_moves(today: pl.DataFrame, before: pl.DataFrame | None) -> pl.DataFrame:
    """Per factor, the name whose value changed most (absolute) since the previous session."""
    if before is None or before.is_empty():
        return pl.DataFrame(
            schema={
                "factor": pl.String,
                "symbol": pl.String,
                "previous": pl.Float64,
                "today": pl.Float64,
                "change": pl.Float64,
            }
        )
    joined = today.join(before, on="symbol", suffix="_prev")
    rows = []
    factors = [c for c in today.columns if today[c].dtype == pl.Float64 and f"{c}_prev" in joined.columns]
    for factor in factors:
        change = (
            joined.select("symbol", pl.col(f"{factor}_prev").alias("previous"), pl.col(factor).alias("today"))
            .with_columns(change=pl.col("today") - pl.col("previous"))
            .drop_nulls("change")
        )
        if change.height:
            rows.append(
                change.sort(pl.col("change").abs(), descending=True)
                .head(1)
                .with_columns(factor=pl.lit(factor))
            )
    return (
        pl.concat(rows).select("factor", "symbol", "previous", "today", "change")
        if rows
        else factor_moves(today, None)
    )


def headlines(day: date, summary: pl.DataFrame, top: pl.DataFrame, factors: pl.DataFrame) -> list[str]:
    """Sentences from the numbers: the fee and utilisation move, the leading candidate, the shocks."""
    out = []
    for metric, now, _, change in summary.iter_rows():
        if change is not None:
            verb = "rose" if change > 0 else "fell" if change < 0 else "held"
            out.append(f"The {metric} {verb} {abs(change):.2f} to {now:.2f} on {day}.")
    if top.height and top["ssr_v4"][0] is not None:
        lead = top.row(0, named=True)
        because = f": {lead['reason']}" if lead["reason"] else ""
        out.append(f"{lead['symbol']} leads the squeeze scores (SSR v4 {lead['ssr_v4']:+.2f}){because}.")
    shocked = factors.filter(pl.col("bcs") >= SHOCK_SD)
    if shocked.height:
        names = ", ".join(shocked.sort("bcs", descending=True)["symbol"].head(5).to_list())
        out.append(f"{shocked.height} names had a borrow-cost shock of {SHOCK_SD:.0f} sd or more ({names}).")
    return out


def daily_digest(day: date, today: Day, before: Day | None, squeeze: pl.DataFrame) -> Digest:
    summary = market_summary(today.snapshot, before.snapshot if before else None)
    top = squeeze.head(TOP).select("symbol", "ssr_v4", "reason")
    moves = factor_moves(today.factors, before.factors if before else None)
    lines = headlines(day, summary, top, today.factors)
    plot = stacked_bars_png(
        squeeze.head(TOP),
        "symbol",
        {f"{c}_contrib": label for c, label in LABELS.items()},
        f"What drives the top {TOP} SSR v4 scores on {day} (contributions, z units)",
    )
    image = png_data_uri(plot)
    sections = [
        ("Market summary", summary),
        (f"Top {TOP} squeeze candidates (SSR v4)", top),
        ("Biggest factor moves since the previous session", moves),
    ]
    markdown = "\n\n".join(
        [
            f"# Lending digest {day}",
            "\n".join(f"- {line}" for line in lines) or "_no headline: no previous session_",
        ]
        + [f"## {title}\n\n{markdown_table(frame)}" for title, frame in sections]
        + [f"![SSR v4 contributions of the top candidates]({image})"]
    )
    body = "".join(f"<h2>{html.escape(title)}</h2>{html_table(frame)}" for title, frame in sections)
    body += f"<h2>What drives the top scores</h2><img alt='SSR v4 contributions' src='{image}'>"
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Lending digest {day}</title></head><body>"
        f"<h1>Lending digest {day}</h1><ul>{''.join(f'<li>{html.escape(line)}</li>' for line in lines)}</ul>{body}"
        "</body></html>"
    )
    return Digest(day, lines, summary, top, moves, plot, markdown, page)
