"""The risk model's pieces on hand-checked small cases, and factor-return recovery on synthetic data
built from known exposures and factor returns (no simulator)."""

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from finance_dag.risk import (
    FACTORS,
    daily_returns,
    descriptors,
    descriptors_range,
    exposures_range,
    factor_covariance,
    factor_returns,
    factor_returns_range,
    risk_model,
    specific_variance,
    standardise,
)
from finance_dag.risk.model import SPECIFIC_HISTORY

START = date(2020, 1, 1)


def _days(n: int) -> list[date]:
    return [START + timedelta(days=k) for k in range(n)]


def _prices(closes: dict[str, np.ndarray], volume: float | dict[str, np.ndarray] = 1e6, shares: float = 1e8):
    """Long prices on consecutive dates; a symbol's closes end on the last date (NaN: no row)."""
    n = max(len(c) for c in closes.values())
    days = _days(n)
    frames = []
    for symbol, close in closes.items():
        vol = volume[symbol] if isinstance(volume, dict) else np.full(len(close), volume)
        frame = pl.DataFrame(
            {
                "date": days[n - len(close) :],
                "symbol": symbol,
                "close": close,
                "volume": vol,
                "shares_outstanding": shares,
            }
        )
        frames.append(frame.filter(pl.col("close").is_not_nan()))
    return pl.concat(frames)


def _market(closes: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"date": _days(len(closes)), "close": closes})


def _fundamentals(symbols, book: float = 5e9) -> pl.DataFrame:
    return pl.DataFrame({"symbol": list(symbols), "book_value": book, "sector": "Energy"})


def test_beta_of_a_levered_series_and_missing_below_100_observations():
    rng = np.random.default_rng(1)
    m = rng.normal(0, 0.01, 299)
    mkt = 100 * np.cumprod(np.r_[1.0, 1 + m])
    stock = 50 * np.cumprod(np.r_[1.0, 1 + 1.5 * m + rng.normal(0, 0.001, 299)])
    closes = {"LEV": stock, "SHORT": stock[-100:], "JUST": stock[-101:]}
    out = descriptors(_prices(closes), _market(mkt), _fundamentals(closes), _days(300)[-1])
    row = {r["symbol"]: r for r in out.iter_rows(named=True)}
    assert row["LEV"]["market"] == pytest.approx(1.5, abs=0.02)
    r = stock[1:] / stock[:-1] - 1
    assert row["LEV"]["market"] == pytest.approx(np.polyfit(m[-252:], r[-252:], 1)[0], rel=1e-9)
    assert row["JUST"]["market"] == pytest.approx(np.polyfit(m[-100:], r[-100:], 1)[0], rel=1e-9)
    assert row["SHORT"]["market"] is None
    assert (
        "market: 99 daily returns paired with the market in 252 sessions, need 100"
        in row["SHORT"]["missing_reason"]
    )
    assert row["LEV"]["missing_reason"] is None


def test_momentum_skips_the_latest_week():
    path = 100.0 + np.arange(80.0)  # close at row k is 100 + k; the day is row 79
    out = descriptors(
        _prices({"UP": path, "NEW": path[-68:]}), _market(path), _fundamentals(["UP", "NEW"]), _days(80)[-1]
    )
    row = {r["symbol"]: r for r in out.iter_rows(named=True)}
    assert row["UP"]["momentum"] == pytest.approx((100 + 79 - 5) / (100 + 79 - 68) - 1)
    assert row["NEW"]["momentum"] is None
    assert "momentum: needs the closes 5 and 68 sessions back" in row["NEW"]["missing_reason"]


def test_volatility_and_turnover_on_hand_values():
    returns = np.array([0.01, -0.02, 0.03, 0.0, 0.015] * 5)  # 25 returns
    close = 10 * np.cumprod(np.r_[1.0, 1 + returns])
    volume = np.arange(1.0, 27.0) * 1e5  # turnover k·1e-3 on row k-1 with 1e8 shares
    short = close[-20:]  # 19 returns, 20 sessions
    out = descriptors(
        _prices({"A": close, "B": short}, volume={"A": volume, "B": volume[-20:]}),
        _market(close),
        _fundamentals(["A", "B"]),
        _days(26)[-1],
    )
    row = {r["symbol"]: r for r in out.iter_rows(named=True)}
    assert row["A"]["volatility"] == pytest.approx(np.std(returns[-21:], ddof=1) * np.sqrt(252))
    assert row["A"]["liquidity"] == pytest.approx(np.log(np.mean(np.arange(6.0, 27.0)) * 1e-3))
    assert row["A"]["size"] == pytest.approx(np.log(close[-1] * 1e8))
    assert row["A"]["value"] == pytest.approx(5e9 / (close[-1] * 1e8))
    assert row["B"]["volatility"] is None and row["B"]["liquidity"] == pytest.approx(
        np.log(np.mean(np.arange(7.0, 27.0)) * 1e-3)
    )
    assert "volatility: 19 daily returns in 21 sessions, need 20" in row["B"]["missing_reason"]


def test_missing_fundamentals_leave_value_null_with_the_reason():
    path = 100.0 + np.arange(30.0)
    out = descriptors(
        _prices({"HAS": path, "NONE": path}), _market(path), _fundamentals(["HAS"]), _days(30)[-1]
    )
    row = {r["symbol"]: r for r in out.iter_rows(named=True)}
    assert row["NONE"]["value"] is None and row["NONE"]["size"] is not None
    assert row["NONE"]["missing_reason"].split("; ")[1] == "no fundamentals for NONE"
    assert row["HAS"]["value"] == pytest.approx(5e9 / (129 * 1e8))
    assert "no fundamentals" not in row["HAS"]["missing_reason"]


def test_many_dates_at_once_equal_one_date_at_a_time():
    rng = np.random.default_rng(2)
    n = 320
    mkt = 100 * np.cumprod(np.r_[1.0, 1 + rng.normal(0, 0.01, n - 1)])
    closes = {f"S{k}": 20 * np.cumprod(np.r_[1.0, 1 + rng.normal(0, 0.02, n - 1)]) for k in range(6)}
    closes["S5"][-40] = np.nan  # a missing session
    volume = {s: rng.uniform(1e5, 1e6, n) for s in closes}
    prices, market, fundamentals = _prices(closes, volume), _market(mkt), _fundamentals(list(closes)[:-1])
    days = _days(n)[-30::7]
    together = descriptors_range(prices, market, fundamentals, days)
    for day in days:
        alone = descriptors(prices, market, fundamentals, day)
        same = together.filter(pl.col("date") == day).drop("date")
        assert same.select("symbol", "sector", "missing_reason").equals(
            alone.select("symbol", "sector", "missing_reason")
        )
        numbers = ["cap", *FACTORS]
        assert np.allclose(
            same.select(numbers).to_numpy().astype(float),
            alone.select(numbers).to_numpy().astype(float),
            rtol=1e-9,
            atol=1e-12,
            equal_nan=True,
        )
    assert together.filter(pl.col("symbol") == "S5")["missing_reason"].drop_nulls().str.contains("S5").all()


def test_winsorise_then_standardise():
    rng = np.random.default_rng(3)
    raw = pl.DataFrame({"symbol": [f"S{k}" for k in range(40)], "market": rng.normal(1, 0.3, 40)})
    raw = raw.with_columns(pl.Series(name, rng.normal(0, 1, 40)) for name in FACTORS[1:])
    raw = raw.with_columns(
        size=pl.when(pl.col("symbol") == "S0").then(50.0).otherwise("size"),
        value=pl.when(pl.col("symbol") == "S1").then(None).otherwise("value"),
    )
    caps = rng.lognormal(22, 1, 40)
    out = standardise(raw, caps)
    for name in FACTORS[1:]:
        x = out[name].to_numpy().astype(float)
        seen = ~np.isnan(x)
        assert np.average(x[seen], weights=caps[seen]) == pytest.approx(0, abs=1e-12)
        assert np.std(x[seen]) == pytest.approx(1)
    assert out["value"][1] is None
    assert out["market"].equals(raw["market"])
    size = raw["size"].to_numpy()
    bound = size.mean() + 3 * size.std()
    clipped = np.minimum(size, bound)
    expected = (bound - np.average(clipped, weights=caps)) / clipped.std()
    assert out["size"][0] == pytest.approx(expected)
    assert out["size"][0] < (50 - np.average(size, weights=caps)) / size.std()


def _three_stocks(ret: list[float]) -> tuple[pl.DataFrame, pl.DataFrame]:
    exposures = pl.DataFrame(
        {
            "symbol": ["A", "B", "C"],
            "market": [0.8, 1.2, 1.0],
            "sector": ["X", "X", "Y"],
            "cap": [100.0, 300.0, 400.0],
        }
    )
    return pl.DataFrame({"symbol": ["A", "B", "C"], "ret": ret}), exposures


def test_three_stock_two_sector_regression_recovers_exact_returns():
    # caps: X holds 400 of 800, Y 400 → f_Y = −f_X. Truth: market 0.01, X 0.002, Y −0.002.
    beta = np.array([0.8, 1.2, 1.0])
    truth = beta * 0.01 + np.array([0.002, 0.002, -0.002])
    section = factor_returns(*_three_stocks(truth.tolist()), styles=["market"])
    assert section.factor_returns == pytest.approx({"market": 0.01, "X": 0.002, "Y": -0.002}, abs=1e-14)
    assert section.r2 == pytest.approx(1.0)
    assert np.abs(section.residuals["specific_return"].to_numpy()).max() < 1e-14
    assert section.left_out == 0


def test_three_stock_regression_with_noise_matches_the_kkt_system():
    ret = [0.011, 0.009, 0.013]
    section = factor_returns(*_three_stocks(ret), styles=["market"])
    x = np.array([[0.8, 1, 0], [1.2, 1, 0], [1.0, 0, 1]])
    w = np.diag(np.sqrt([100.0, 300.0, 400.0]))
    a = np.array([0, 0.5, 0.5])  # cap-weighted sector sum
    kkt = np.block([[x.T @ w @ x, a[:, None]], [a[None, :], np.zeros((1, 1))]])
    solution = np.linalg.solve(kkt, np.r_[x.T @ w @ np.array(ret), 0.0])[:3]
    got = section.factor_returns
    assert [got["market"], got["X"], got["Y"]] == pytest.approx(solution.tolist(), abs=1e-14)
    assert 0.5 * got["X"] + 0.5 * got["Y"] == pytest.approx(0, abs=1e-15)


def test_names_with_a_missing_exposure_are_left_out_and_counted():
    returns, exposures = _three_stocks([0.01, 0.02, 0.03])
    returns = pl.concat([returns, pl.DataFrame({"symbol": ["D", "E"], "ret": [0.0, 0.0]})])
    exposures = pl.concat(
        [exposures, pl.DataFrame({"symbol": ["D"], "market": [None], "sector": ["Y"], "cap": [1.0]})]
    )
    section = factor_returns(returns, exposures, styles=["market"])
    assert section.left_out == 2
    assert section.residuals["symbol"].to_list() == ["A", "B", "C"]


def test_ewma_covariance_equals_the_hand_formula_and_is_psd():
    f = np.array([[0.01, -0.02], [0.03, 0.01], [-0.01, 0.02]])
    frame = pl.DataFrame({"date": _days(3), "a": f[:, 0], "b": f[:, 1]})
    w = 0.5 ** (np.array([2.0, 1.0, 0.0]) / 2.0)
    w /= w.sum()
    centred = f - w @ f
    hand = sum(w[k] * np.outer(centred[k], centred[k]) for k in range(3))
    assert np.allclose(factor_covariance(frame, half_life=2.0), hand, rtol=1e-12, atol=0)
    rng = np.random.default_rng(4)
    wide = rng.normal(0, 0.01, (3, 8))  # 3 dates, 8 factors: rank 2
    wide[:, 7] = wide[:, 0] + wide[:, 1]
    cov = factor_covariance(pl.DataFrame({"date": _days(3), **{f"f{k}": wide[:, k] for k in range(8)}}))
    assert np.allclose(cov, cov.T) and np.linalg.eigvalsh(cov).min() >= -1e-12


def test_specific_variance_weights_and_shrinks_short_histories():
    days = _days(SPECIFIC_HISTORY)
    rng = np.random.default_rng(5)
    full = rng.normal(0, 0.02, SPECIFIC_HISTORY)
    residuals = pl.DataFrame(
        {
            "date": days * 2 + days[-21:],
            "symbol": ["FULL"] * len(days) + ["TWIN"] * len(days) + ["SHORT"] * 21,
            "specific_return": np.r_[full, full, np.full(21, 0.001)],
        }
    )
    out = {r["symbol"]: r for r in specific_variance(residuals, half_life=10).iter_rows(named=True)}
    w = 0.5 ** (np.arange(SPECIFIC_HISTORY)[::-1] / 10)
    ew = np.sum(w * full**2) / w.sum()
    assert out["FULL"]["specific_variance"] == pytest.approx(ew)
    assert out["SHORT"]["observations"] == 21
    assert out["SHORT"]["specific_variance"] == pytest.approx(21 / 63 * 1e-6 + 42 / 63 * ew)


def test_daily_returns_do_not_span_a_missing_session():
    prices = _prices(
        {"A": np.array([10.0, 11.0, np.nan, 12.0, 12.6]), "B": np.array([1.0, 1.0, 1.0, 1.0, 2.0])}
    )
    got = daily_returns(prices).filter(pl.col("symbol") == "A")["ret"].to_list()
    assert got == pytest.approx([0.1, 0.05])


def _synthetic(n_stocks: int, n_dates: int, seed: int = 6):
    """Exposures (date t) and returns (date t+1) drawn from known factor returns with the sector
    constraint, plus small specific noise."""
    rng = np.random.default_rng(seed)
    sectors = np.array(["A", "B", "C", "D"])[rng.integers(0, 4, n_stocks)]
    caps = rng.lognormal(22, 1, n_stocks)
    share = np.array([caps[sectors == s].sum() for s in "ABCD"]) / caps.sum()
    symbols = [f"S{k:03d}" for k in range(n_stocks)]
    days = _days(n_dates + 1)
    exposures, returns, truth = [], [], []
    for t in range(n_dates):
        styles = np.c_[rng.normal(1, 0.3, n_stocks), rng.normal(0, 1, (n_stocks, 5))]
        f = rng.normal(0, [0.01, 0.004, 0.004, 0.005, 0.004, 0.003, 0.005, 0.005, 0.005, 0.005])
        f[6:] -= share @ f[6:]
        ret = (
            styles @ f[:6]
            + f[6:][np.searchsorted(np.array(list("ABCD")), sectors)]
            + rng.normal(0, 0.002, n_stocks)
        )
        exposures.append(
            pl.DataFrame({"date": days[t], "symbol": symbols, "sector": sectors, "cap": caps}).hstack(
                pl.DataFrame(styles, schema=list(FACTORS))
            )
        )
        returns.append(pl.DataFrame({"date": days[t + 1], "symbol": symbols, "ret": ret}))
        truth.append(f)
    return pl.concat(exposures), pl.concat(returns), np.array(truth)


def test_factor_returns_recovered_from_synthetic_data():
    exposures, returns, truth = _synthetic(300, 120)
    result = factor_returns_range(returns, exposures)
    assert result.returns.columns == ["date", *FACTORS, "A", "B", "C", "D"]
    estimated = result.returns.drop("date").to_numpy()
    for k, name in enumerate(result.returns.columns[1:]):
        assert np.corrcoef(estimated[:, k], truth[:, k])[0, 1] > 0.99, name
    assert result.stats["left_out"].sum() == 0 and (result.stats["r2"] > 0.5).all()
    assert result.residuals.height == 300 * 120


def test_risk_model_end_to_end_on_a_small_panel():
    rng = np.random.default_rng(7)
    n, stocks = 200, 40
    m = rng.normal(0, 0.01, n - 1)
    closes = {
        f"S{k:02d}": 20 * np.cumprod(np.r_[1.0, 1 + rng.uniform(0.5, 1.5) * m + rng.normal(0, 0.01, n - 1)])
        for k in range(stocks)
    }
    prices = _prices(closes, {s: rng.uniform(1e5, 1e6, n) for s in closes})
    fundamentals = _fundamentals(closes).with_columns(
        sector=pl.Series(["X", "Y"] * (stocks // 2)), book_value=pl.Series(rng.uniform(1e8, 5e9, stocks))
    )
    days = _days(n)[-60:]
    exposures = exposures_range(prices, _market(100 * np.cumprod(np.r_[1.0, 1 + m])), fundamentals, days)
    model = risk_model(exposures, factor_returns_range(daily_returns(prices), exposures), days[-1])
    assert model.factors == (*FACTORS, "X", "Y")
    assert model.covariance.shape == (8, 8)
    x = model.exposure_matrix(["S00", "S01", "NOPE"])
    assert np.isnan(x[2]).all() and x[0, 6] + x[0, 7] == 1
    assert model.specific.height == stocks
