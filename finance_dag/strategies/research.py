"""Strategy research on the bar lake, pure logic: the daily panel from ``daily_bars`` rows, which
symbols can be tested (and why the others cannot), trailing cost inputs, one strategy's walk-forward
run with its sizing and costs, and the comparison of strategies (table, rolling Sharpe, correlation,
an equal-risk combination, the seed's success criteria).

Everything here uses data up to t for a decision at t: the cost inputs (ADV, σ) are trailing, the
combination's weights come from each strategy's returns before the session they apply to.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from functools import partial

import numpy as np
import polars as pl

from finance_dag.analytics import performance_summary
from finance_dag.backtest.costs import CostModel
from finance_dag.backtest.engine import forward_fill
from finance_dag.strategies.signals import Bars, Strategy
from finance_dag.strategies.sizing import Sizer, Sizing
from finance_dag.strategies.walkforward import WalkForward, walk_forward

__all__ = [
    "CRITERIA",
    "SECTOR_OF",
    "combined_summary",
    "bars_from_daily",
    "comparison_table",
    "daily_cost",
    "equal_risk_combination",
    "evaluate",
    "grid_with",
    "rolling_sharpe",
    "select_symbols",
    "usable_symbols",
]

COST_WINDOW = 21  # sessions of volume and returns behind the ADV and σ that price an order
FALLBACK_VOLATILITY = 0.02  # daily σ before a symbol has two returns
# The seed's success criteria, reported, never tuned for: (column, metric, test, threshold).
CRITERIA = {
    "sharpe_above_1": ("sharpe", ">", 1.0),
    "drawdown_within_15pct": ("max_drawdown", ">", -0.15),
}
COMBINED_SHARPE_TARGET = 1.5

# Sector (or asset class for funds) of seed 003's universe, for the sector exposure limit; a symbol
# not listed is its own "UNCLASSIFIED" group.
_SECTORS: dict[str, tuple[str, ...]] = {
    "US equity index": ("SPY", "QQQ", "IWM", "DIA", "VTI", "VOO", "MDY", "RSP"),
    "Leveraged and inverse": (
        "TQQQ", "SOXL", "TMF", "SQQQ", "SOXS", "SPXL", "SPXS", "TNA", "TZA", "FAS", "FAZ", "UPRO",
        "TMV", "LABU", "LABD", "UVXY",
    ),
    "Information Technology": (
        "NVDA", "AAPL", "MSFT", "XLK", "SMH", "SOXX", "AMD", "INTC", "CRM", "ORCL", "ADBE",
    ),
    "Communication Services": ("GOOGL", "META", "XLC", "NFLX", "DIS"),
    "Consumer Discretionary": ("TSLA", "AMZN", "XLY", "HD"),
    "Consumer Staples": ("XLP", "KO", "PEP", "WMT", "COST"),
    "Financials": ("XLF", "BAC", "KRE", "JPM", "WFC", "GS", "C"),
    "Energy": ("XLE", "XOM", "CVX", "USO", "UNG"),
    "Health Care": ("PFE", "XLV", "XBI", "JNJ", "UNH", "MRK", "ABBV"),
    "Industrials": ("XLI",),
    "Materials": ("XLB",),
    "Utilities": ("XLU",),
    "Real Estate": ("XLRE",),
    "International equity": (
        "FXI", "KWEB", "EEM", "EFA", "EWJ", "EWZ", "EWG", "EWU", "INDA", "MCHI", "VEA", "VWO",
    ),
    "Bonds": ("TLT", "IEF", "SHY", "HYG", "LQD", "AGG", "BND", "TIP"),
    "Precious metals": ("GLD", "SLV", "GDX", "GDXJ"),
}  # fmt: skip
SECTOR_OF: dict[str, str] = {symbol: sector for sector, names in _SECTORS.items() for symbol in names}


def bars_from_daily(frame: pl.DataFrame) -> Bars:
    """Daily :class:`Bars` from ``daily_bars`` rows (``symbol``, ``date``, ``high``, ``low``,
    ``close``, ``volume``): sessions are the distinct dates, symbols sorted, NaN where a symbol has no
    row. The minute lake holds raw prices, so the closes are unadjusted (a split would read as a
    return; the simulated market has none)."""
    missing = {"symbol", "date", "high", "low", "close", "volume"} - set(frame.columns)
    if missing:
        raise ValueError(f"bars_from_daily: daily bars lack column(s) {sorted(missing)}")
    if frame.select("symbol", "date").is_duplicated().any():
        raise ValueError("bars_from_daily: duplicate (symbol, date) rows")
    dates, row = np.unique(frame["date"].to_numpy(), return_inverse=True)
    symbols, col = np.unique(frame["symbol"].to_numpy(), return_inverse=True)

    def matrix(name: str) -> np.ndarray:
        out = np.full((dates.size, symbols.size), np.nan)
        out[row, col] = frame[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
        return out

    return Bars(dates, tuple(symbols.tolist()), *(matrix(c) for c in ("close", "high", "low", "volume")))


def usable_symbols(bars: Bars, ready: Sequence[str], min_sessions: int) -> tuple[list[str], dict[str, str]]:
    """The symbols of ``bars`` a walk-forward can use, and every other symbol with its reason:
    not marked ready by the coverage report, or fewer than ``min_sessions`` closes (train + test)."""
    kept, skipped = [], {}
    ready_set = set(ready)
    for j, symbol in enumerate(bars.symbols):
        closes = int(np.isfinite(bars.close[:, j]).sum())
        if symbol not in ready_set:
            skipped[symbol] = "not ready for research in the coverage report"
        elif closes < min_sessions:
            skipped[symbol] = f"{closes} sessions of daily bars, needs {min_sessions} (train + test)"
        else:
            kept.append(symbol)
    for symbol in sorted(ready_set - set(bars.symbols)):
        skipped[symbol] = "ready in the coverage report but no daily bars in the window"
    return kept, skipped


def select_symbols(bars: Bars, symbols: Sequence[str]) -> Bars:
    """``bars`` restricted to ``symbols`` (in that order)."""
    cols = [bars.symbols.index(s) for s in symbols]
    return Bars(
        bars.dates, tuple(symbols), *(getattr(bars, a)[:, cols] for a in ("close", "high", "low", "volume"))
    )


def daily_cost(bars: Bars, model: CostModel, capital: float):
    """The per-session cost function of a weights path on ``bars`` (for :func:`walk_forward`): orders
    priced at the close with the trailing ``COST_WINDOW``-session mean volume (ADV, rows ≤ t) and
    standard deviation of daily returns (σ, ddof=1; ``FALLBACK_VOLATILITY`` before two returns).

    A symbol without a bar on t that must be sold there (a rule is flat where there is no close) is
    sold at its last close, as the event loop does, with the ADV of the sessions it traded."""
    volume = pl.DataFrame(bars.volume, orient="row").select(pl.all().fill_nan(None))
    adv = volume.select(pl.all().rolling_mean(COST_WINDOW, min_samples=1).forward_fill()).to_numpy()
    returns = bars.returns
    sigma = pl.DataFrame(returns, orient="row").select(
        pl.all().fill_nan(None).rolling_std(COST_WINDOW, min_samples=2)
    )
    sigma = sigma.fill_null(FALLBACK_VOLATILITY).to_numpy()
    return partial(
        model.weight_costs,
        prices=forward_fill(bars.close),
        adv=np.fmax(np.nan_to_num(adv, nan=1.0), 1.0),
        volatility=sigma,
        capital=capital,
    )


def grid_with(strategy: Strategy, overrides: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """The strategy's grid with the values of ``overrides`` (parameter → values tried; one value
    fixes it), every value checked by :meth:`Strategy.validate` (an unknown parameter or a value out
    of range fails naming it)."""
    for key, values in overrides.items():
        if not values:
            raise ValueError(f"{strategy.name}: parameter {key!r} is given no values to try")
        for value in values:
            strategy.validate({key: value})
    keys = list(strategy.params)
    choices = [overrides.get(k, strategy.params[k].grid) for k in keys]
    return [strategy.validate(dict(zip(keys, values, strict=True))) for values in itertools.product(*choices)]


def evaluate(
    strategy: Strategy,
    bars: Bars,
    train: int,
    test: int,
    grid: list[dict[str, float]] | None = None,
    sizing: Sizing | None = None,
    costs: CostModel | None = None,
    capital: float = 1_000_000.0,
    exposures: np.ndarray | None = None,
    options: Mapping[str, object] | None = None,
) -> WalkForward:
    """Walk-forward of a daily ``strategy`` on ``bars`` with ``sizing`` (default: equal budgets),
    orders priced by ``costs`` (None: free) on ``capital``, sector labels from :data:`SECTOR_OF`, the
    risk factor ``exposures`` (N×K, for ``Sizing.factor_limit``) and the rule's ``options``."""
    returns = bars.returns
    sizer = Sizer(
        returns,
        sizing or Sizing(),
        sectors=[SECTOR_OF.get(s) for s in bars.symbols],
        exposures=exposures,
    )
    cost = None if costs is None else daily_cost(bars, costs, capital)
    return walk_forward(strategy, bars, train, test, cost=cost, size=sizer, grid=grid, options=options)


def rolling_sharpe(returns: np.ndarray, window: int = 63) -> np.ndarray:
    """Annualised Sharpe ratio of the last ``window`` returns at each row (NaN before a full window
    or on a zero spread): mean / std (ddof=1) × √252, as :func:`performance_summary`."""
    r = pl.Series(np.asarray(returns, dtype=float))
    mean = r.rolling_mean(window)
    std = r.rolling_std(window)
    out = (mean / std * np.sqrt(252)).to_numpy()
    return np.where(std.to_numpy() > 0, out, np.nan)


def equal_risk_combination(returns: pl.DataFrame, window: int = 63) -> pl.DataFrame:
    """An equal-risk combination of strategies: ``returns`` has ``date`` and one column of daily
    returns per strategy (null where a strategy has none). On session t each strategy with a
    trailing volatility gets weight ∝ 1 / σ (std, ddof=1, of its last ``window`` returns *before*
    t), normalised to sum to 1; before any strategy has ``window`` returns the combination is flat.
    Returns ``date``, ``return`` and one ``weight_<strategy>`` column each."""
    names = [c for c in returns.columns if c != "date"]
    frame = returns.sort("date")
    sigma = frame.select(pl.col(n).shift(1).rolling_std(window, min_samples=window) for n in names).to_numpy()
    inverse = np.where(sigma > 0, 1.0 / sigma, 0.0)
    inverse = np.nan_to_num(inverse, nan=0.0)
    total = inverse.sum(axis=1, keepdims=True)
    weights = np.divide(inverse, total, out=np.zeros_like(inverse), where=total > 0)
    values = np.nan_to_num(frame.select(names).to_numpy().astype(float), nan=0.0)
    return pl.DataFrame(
        {
            "date": frame["date"],
            "return": (weights * values).sum(axis=1),
            **{f"weight_{n}": weights[:, j] for j, n in enumerate(names)},
        }
    )


def comparison_table(results: Mapping[str, WalkForward], families: Mapping[str, str]) -> pl.DataFrame:
    """One row per strategy: out-of-sample Sharpe, Sortino, max drawdown, CAGR, win rate, win/loss,
    turnover and costs paid; in-sample Sharpe beside it; parameter sets tried, deflated Sharpe and PBO;
    and a pass/fail column per criterion of :data:`CRITERIA`."""
    rows = []
    for name, result in results.items():
        oos, ins = result.out_of_sample, result.in_sample
        row = {
            "strategy": name,
            "family": families[name],
            "sharpe": oos["sharpe"],
            "sortino": oos["sortino"],
            "max_drawdown": oos["max_drawdown"],
            "cagr": oos["cagr"],
            "win_rate": oos["win_rate"],
            "win_loss": oos["win_loss"],
            "turnover": oos["turnover"],
            "costs": oos["costs"],
            "in_sample_sharpe": ins["sharpe"],
            "trials": result.n_trials,
            "deflated_sharpe": result.deflated_sharpe,
            "pbo": result.pbo,
        }
        for column, (metric, _, threshold) in CRITERIA.items():
            row[column] = bool(np.isfinite(row[metric]) and row[metric] > threshold)
        rows.append(row)
    return pl.DataFrame(rows)


def combined_summary(combination: pl.DataFrame) -> dict[str, float | bool]:
    """:func:`performance_summary` of the combination's returns from its first invested session,
    with ``sharpe_above_1_5`` (the seed's combined criterion)."""
    invested = combination.filter(pl.sum_horizontal(pl.col("^weight_.*$")) > 0)["return"].to_numpy()
    summary = performance_summary(invested)
    return {
        **summary,
        "sharpe_above_1_5": bool(
            np.isfinite(summary["sharpe"]) and summary["sharpe"] > COMBINED_SHARPE_TARGET
        ),
    }
