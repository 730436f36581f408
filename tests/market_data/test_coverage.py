from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from finance_dag.market_data.coverage import coverage_summary, daily_coverage, refill_candidates, tier_counts

FULL, EARLY = date(2024, 11, 27), date(2024, 11, 29)


def minutes(
    day: date, count: int, symbol: str, source: str = "a", regular: bool = True, start_hour: int = 14
):
    open_utc = datetime(day.year, day.month, day.day, start_hour, 30, tzinfo=UTC)
    return [
        {"symbol": symbol, "ts": open_utc + timedelta(minutes=i), "regular": regular, "source": source}
        for i in range(count)
    ]


def test_coverage_counts_distinct_regular_minutes_against_the_calendar():
    rows = (
        minutes(FULL, 351, "SPY", "a")  # 351 / 390 = 90 %
        + minutes(FULL, 9, "SPY", "b", start_hour=20)  # 15:30 onwards from a fallback: 360 / 390
        + minutes(EARLY, 210, "SPY")
        + minutes(EARLY, 300, "QQQ", regular=False, start_hour=9)  # extended hours never count
    )
    table = daily_coverage(pl.DataFrame(rows), ["SPY", "QQQ"], [FULL, EARLY])
    got = {
        (r["date"], r["symbol"]): (r["bars"], r["expected_minutes"], r["coverage"])
        for r in table.iter_rows(named=True)
    }
    assert got[(FULL, "SPY")] == (360, 390, pytest.approx(360 / 390))
    assert got[(EARLY, "SPY")] == (210, 210, 1.0)
    assert got[(EARLY, "QQQ")] == (0, 210, 0.0)
    assert got[(FULL, "QQQ")] == (0, 390, 0.0)
    spy = table.filter((pl.col("symbol") == "SPY") & (pl.col("date") == FULL))["bars_by_source"].item()
    assert spy.to_list() == [{"source": "a", "bars": 351}, {"source": "b", "bars": 9}]
    assert table["coverage"].max() <= 1.0


def test_tiers_at_their_boundaries():
    daily = pl.DataFrame(
        {
            "symbol": ["EX", "GOOD", "FAIR", "POOR", "VPOOR", "NONE"],
            "date": [FULL] * 6,
            "bars": [390 * 95 // 100 + 1, 332, 273, 195, 10, 0],
            "expected_minutes": [390] * 6,
        }
    ).with_columns(coverage=pl.col("bars") / pl.col("expected_minutes"))
    summary = coverage_summary(daily)
    tiers = dict(summary.select("symbol", "tier").iter_rows())
    assert tiers == {
        "EX": "EXCELLENT",
        "GOOD": "GOOD",
        "FAIR": "FAIR",
        "POOR": "POOR",
        "VPOOR": "VERY POOR",
        "NONE": "NO DATA",
    }
    assert summary.filter("ready")["symbol"].sort().to_list() == ["EX", "GOOD"]  # >= 85 %
    assert tier_counts(summary) == {
        "EXCELLENT": 1,
        "GOOD": 1,
        "FAIR": 1,
        "POOR": 1,
        "VERY POOR": 1,
        "NO DATA": 1,
    }


def test_refill_candidates_worst_first_and_bounded_by_attempts():
    daily = pl.DataFrame(
        {"date": [FULL, FULL, EARLY], "symbol": ["A", "B", "C"], "coverage": [0.5, 0.99, 0.2]}
    )
    assert refill_candidates(daily, 0.85, {}, 2, 10) == ["2024-11-29|C", "2024-11-27|A"]
    assert refill_candidates(daily, 0.85, {"2024-11-29|C": 2}, 2, 10) == ["2024-11-27|A"]
    assert refill_candidates(daily, 0.85, {}, 2, 1) == ["2024-11-29|C"]
