from datetime import date

import numpy as np
import polars as pl

from finance_dag.core import calendar
from finance_dag.core.reports import coverage_grid, coverage_heatmap_png, markdown_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _daily(rows: list[tuple[date, str, float, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["date", "symbol", "coverage", "bars"], orient="row").with_columns(
        expected_minutes=pl.lit(390)
    )


def test_coverage_grid_shows_unmaterialised_sessions_as_masked_gaps():
    days = calendar.sessions(date(2024, 11, 18), date(2024, 11, 22))  # Mon..Fri
    materialised = [d for d in days if d != date(2024, 11, 20)]
    rows = [(d, s, 1.0, 390) for d in materialised for s in ("SPY", "AAPL")]
    rows[0] = (days[0], "SPY", 0.0, 0)  # a row without bars is coverage 0, not a gap
    sessions, symbols, grid = coverage_grid(_daily(rows))
    assert sessions == days and symbols == ["AAPL", "SPY"]
    assert grid.shape == (2, 5)
    gap = sessions.index(date(2024, 11, 20))
    assert grid.mask[:, gap].all()
    assert not grid.mask[1, 0] and grid[1, 0] == 0.0
    assert grid.mask.sum() == 2 and grid.sum() == 7.0


def test_coverage_grid_spans_the_calendar_and_keeps_the_latest_sessions():
    rows = [(date(2024, 11, 27), "SPY", 0.9, 351), (date(2024, 12, 3), "SPY", 1.0, 390)]
    sessions, _, grid = coverage_grid(_daily(rows))
    assert sessions == calendar.sessions(date(2024, 11, 27), date(2024, 12, 3))
    assert date(2024, 11, 28) not in sessions  # Thanksgiving is no session, so no gap
    assert grid.mask.tolist() == [[False, True, True, False]]  # 29 Nov and 2 Dec are gaps
    latest, _, _ = coverage_grid(_daily(rows), max_sessions=2)
    assert latest == [date(2024, 12, 2), date(2024, 12, 3)]
    assert coverage_grid(_daily([]))[2].shape == (0, 0)


def test_heatmap_renders_a_small_frame_with_a_gap_as_png():
    days = calendar.sessions(date(2024, 11, 15), date(2024, 11, 29))
    rows = [(d, s, 0.97, 378) for i, d in enumerate(days) if i != 5 for s in ("SPY", "QQQ", "XLE")]
    png = coverage_heatmap_png(_daily(rows))
    assert png.startswith(PNG_MAGIC) and len(png) > 1000


def test_heatmap_of_a_year_by_100_symbols_stays_small():
    days = calendar.sessions(date(2024, 1, 2), date(2024, 12, 31))
    symbols = [f"S{i:03d}" for i in range(100)]
    rng = np.random.default_rng(0)
    coverage = np.clip(1 - rng.exponential(0.04, len(days) * len(symbols)), 0, 1)
    daily = pl.DataFrame(
        {
            "date": np.repeat(np.array(days, dtype="datetime64[D]"), len(symbols)),
            "symbol": symbols * len(days),
            "coverage": coverage,
        }
    ).filter(pl.col("date") != date(2024, 6, 3))
    _, labels, grid = coverage_grid(daily)
    assert grid.shape == (100, 252) and len(labels) == 100
    png = coverage_heatmap_png(daily)
    assert png.startswith(PNG_MAGIC) and len(png) < 300_000
    height = int.from_bytes(png[20:24], "big")  # IHDR: width at 16, height at 20
    assert height >= 100 * 8 * 100 / 72  # at least 8 pt per symbol row at 100 dpi


def test_markdown_table_formats_cells_and_truncates():
    frame = pl.DataFrame(
        {"symbol": ["A|B", "C", "D"], "coverage": [0.123456, 0.00001234, None], "bars": [1, 2, 3]}
    )
    text = markdown_table(frame, max_rows=2, digits=3)
    lines = text.splitlines()
    assert lines[0] == "| symbol | coverage | bars |"
    assert lines[1] == "|---|---|---|"
    assert lines[2] == "| A\\|B | 0.123 | 1 |"
    assert lines[3] == "| C | 1.23e-05 | 2 |"
    assert lines[-1] == "_1 more rows_"
    assert markdown_table(pl.DataFrame()) == "_no rows_"
    assert markdown_table(frame).splitlines()[-1] == "| D |  | 3 |"
