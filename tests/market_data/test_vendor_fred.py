"""FRED adapter (fredapi) against the loopback fake, and the simulated macro series behind it."""

from datetime import date

import dagster as dg
import polars as pl
import pytest

from finance_dag.core.http import RateLimiter, RetryPolicy
from finance_dag.market_data.bars import VendorError
from finance_dag.market_data.vendors.fred import FredMacro
from finance_dag.platform.vendors import FredResource
from finance_dag.sim import SimulatedMarket
from finance_dag.sim.macro import MACRO_SERIES, SimulatedMacro
from finance_dag.testing.fred import FakeFred

pytestmark = pytest.mark.vendors

KEY = "fredsecretkey0123456789abcdef"
START, END = date(2024, 11, 1), date(2024, 12, 31)


@pytest.fixture(scope="module")
def macro() -> SimulatedMacro:
    return SimulatedMacro(SimulatedMarket(7))


@pytest.fixture
def fake(macro):
    with FakeFred(macro, KEY) as server:
        server.slow_seconds = 4.0
        yield server


def client(url: str, key: str = KEY, attempts: int = 4, **kwargs) -> FredMacro:
    policy = RetryPolicy(attempts=attempts, initial_wait=0.01, jitter=0.0, timeout=3.0, sleep=lambda s: None)
    return FredMacro(
        key, base_url=f"{url}/fred", policy=policy, limiter=RateLimiter([(1000, 60.0)]), **kwargs
    )


@pytest.mark.chaos("vendor faults", faults="429 500 503 timeout truncated malformed")
def test_fetch_equals_the_simulated_source_despite_faults(macro, fake) -> None:
    clean = client(fake.url).fetch(START, END)
    assert clean.equals(macro.observations(list(MACRO_SERIES), START, END))
    assert fake.total() == 3
    # hand-checked shape: 41 sessions Nov-Dec 2024, 9 Fridays; "." holidays (11-28, 12-25) dropped
    assert dict(clean.group_by("series_id").len().iter_rows()) == {
        "BAMLH0A0HYM2": 41,
        "VIXCLS": 41,
        "STLFSI4": 9,
    }
    assert date(2024, 11, 28) not in clean["date"].to_list()
    for kind in ("429", "500", "503", "slow", "truncated", "malformed"):
        fake.inject(kind)
    assert client(fake.url, attempts=10).fetch(START, END).equals(clean)
    assert fake.total() == 3 + 3 + 6


def test_series_ids_are_configurable(macro, fake) -> None:
    out = client(fake.url, series_ids=["VIXCLS"]).fetch(START, END)
    assert out["series_id"].unique().to_list() == ["VIXCLS"]
    assert [r.query["series_id"] for r in fake.log] == ["VIXCLS"]


@pytest.mark.chaos("vendor faults", faults="503-persistent")
def test_series_that_keeps_failing_is_named_with_dates_and_status(fake) -> None:
    fake.inject("503", times=None, match=lambda r: r.query.get("series_id") == "STLFSI4")
    with pytest.raises(VendorError) as failed:
        client(fake.url, attempts=3).fetch(START, END)
    assert str(failed.value).startswith(
        "fred: GET series/observations STLFSI4 2024-11-01..2024-12-31 failed after 3 attempt(s) (HTTP 503)"
    )


def test_wrong_key_is_permanent_and_never_shown(fake) -> None:
    with pytest.raises(VendorError) as failed:
        client(fake.url, key="wrongkey-abc").fetch(START, END)
    assert "HTTP 400" in str(failed.value) and "api_key is not registered" in str(failed.value)
    assert "wrongkey-abc" not in str(failed.value)
    assert fake.total() == 3  # one attempt per series: a 400 is not retried
    fake.inject("echo", times=None)  # a body repeating the query, api_key included
    with pytest.raises(VendorError) as echoed:
        client(fake.url).fetch(START, END)
    assert KEY not in str(echoed.value) and "api_key=***" in str(echoed.value)


def test_missing_credentials_name_the_variable() -> None:
    with pytest.raises(ValueError, match="FRED_API_KEY"):
        FredResource().setup_for_execution(dg.build_init_resource_context())


def test_simulated_macro_levels_and_market_link(macro) -> None:
    history = macro.observations(list(MACRO_SERIES), date(2012, 1, 1), date(2024, 12, 31))
    q = history.group_by("series_id").agg(
        lo=pl.col("value").quantile(0.05), mid=pl.col("value").median(), hi=pl.col("value").quantile(0.95)
    )
    levels = {sid: (lo, mid, hi) for sid, lo, mid, hi in q.iter_rows()}
    assert levels["VIXCLS"][0] > 10 and levels["VIXCLS"][2] < 40 and 14 < levels["VIXCLS"][1] < 22
    assert levels["BAMLH0A0HYM2"][0] > 2.5 and levels["BAMLH0A0HYM2"][2] < 8
    assert -2 < levels["STLFSI4"][1] < 1
    market = macro.market.factor_returns(date(2012, 1, 1), date(2024, 12, 31))
    vix = history.filter(pl.col("series_id") == "VIXCLS").join(market, on="date")
    change = vix.select(pl.corr(pl.col("value").log().diff(), "market")).item()
    assert change < -0.5  # VIX jumps when the market factor falls
    assert macro.observations(["VIXCLS"], date(2024, 11, 29), date(2024, 11, 29)).equals(
        vix.filter(pl.col("date") == date(2024, 11, 29)).select("date", "series_id", "value")
    )


def test_hy_oas_kept_for_3_years_is_reported_short_never_complete(macro) -> None:
    today = date(2024, 12, 31)
    start = date(2020, 1, 1)
    with FakeFred(macro, KEY, today=today) as fake:
        report = client(fake.url).fetch_report(start, today)
        frame = client(fake.url).fetch(start, today)  # backward compatible: the frame alone
    hy = "BAMLH0A0HYM2"
    kept = macro.observations([hy], date(2021, 12, 31), today)
    assert report.frame.equals(frame)
    assert report.frame.filter(series_id=hy).equals(kept)  # only the last 3 years exist
    assert report.requested == (start, today)
    assert report.served[hy] == (kept["date"].min(), kept["date"].max())
    assert report.served["VIXCLS"][0] < date(2020, 1, 8) and report.served["STLFSI4"][0] == date(2020, 1, 3)
    assert not report.complete
    (warning,) = report.warnings
    first = kept["date"].min()
    assert warning == (
        f"fred: {hy} served {first.isoformat()}..{kept['date'].max().isoformat()}, requested "
        f"2020-01-01..2024-12-31: starts {(first - start).days} days late "
        "(FRED keeps ICE BofA series only for a rolling 3 years)"
    )


def test_series_ending_early_is_reported_and_a_full_range_is_complete(macro) -> None:
    with FakeFred(macro, KEY, today=date(2024, 12, 31)) as fake:
        full = client(fake.url).fetch_report(START, END)
        ahead = client(fake.url, series_ids=["VIXCLS"]).fetch_report(START, date(2025, 1, 31))
    assert full.complete and full.warnings == []
    assert set(full.served) == set(MACRO_SERIES)
    (warning,) = ahead.warnings
    assert warning.startswith("fred: VIXCLS served 2024-11-01..2024-12-31, requested 2024-11-01..2025-01-31")
    assert warning.endswith("ends 31 days early")
