"""Factor validation and performance for notebooks: forward returns, information coefficient and
its summary, and ``performance_summary`` of a return series (empyrical's conventions).

Plain polars in, polars out; no Dagster. The conventions follow alphalens so the numbers can be
compared with it (see ``docs/analytics.md``)::

    from finance_dag.analytics import ic_summary, information_coefficient

    ic = information_coefficient(factors, prices)  # one row per (date, factor, period)
    ic_summary(ic)  # mean IC, IC std, IR, t-stat, p-value, hit rate per (factor, period)

Inputs are long frames: ``factors`` has ``date``, ``symbol`` and one or more numeric factor columns
(every other column is a factor); ``prices`` has ``date``, ``symbol`` and ``close``.

Conventions, decided once here:

- **Sessions** are the distinct dates of ``prices`` (all symbols together), sorted. Each symbol is
  laid on that common calendar between its first and last price, so a session on which a symbol
  has no row is a *missing* close for that symbol; nothing is forward-filled and a return never
  spans more sessions than it says.
- **Missing closes**: an absent row, a null, a NaN or a non-positive close is missing.
- **Alignment (t+1)**: a factor dated t is known after t's close, so its k-session forward return
  runs from the close of the next session t+1 to the close of session t+1+k:
  ``fwd_k(t) = close[t+1+k] / close[t+1] - 1``. It is null if either close is missing or the
  calendar ends before t+1+k. Factor dates that are not sessions of ``prices`` get no return.
- **IC**: per (date, factor, period), pairs where the factor or the forward return is null/NaN are
  dropped; no outlier filtering; dates with fewer than ``min_names`` pairs are skipped; the IC is
  the Spearman correlation with *average* ranks for ties (the same number as
  ``scipy.stats.spearmanr``). If either side is constant on a date the IC is undefined: the row
  is kept with ``ic`` null, and ``ic_summary`` ignores it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations
from statistics import NormalDist

import numpy as np
import polars as pl

__all__ = [
    "correlated_pairs",
    "deflated_sharpe_ratio",
    "expected_maximum_sharpe",
    "forward_returns",
    "ic_summary",
    "information_coefficient",
    "performance_summary",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "quantile_returns",
    "rolling_ic",
]

_KEYS = ["date", "symbol"]


def _check_periods(periods: Iterable[int]) -> list[int]:
    out = [int(p) for p in periods]
    if not out or any(p < 1 for p in out) or len(set(out)) != len(out):
        raise ValueError(f"periods must be distinct positive integers, got {list(periods)!r}")
    return out


def _require(frame: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {frame.columns}")
    dupes = frame.select(_KEYS).is_duplicated()
    if dupes.any():
        rows = frame.filter(dupes).select(_KEYS).unique().sort(_KEYS).head(5).rows()
        raise ValueError(f"{what} has duplicate (date, symbol) rows, e.g. {rows}")


def _factor_columns(factors: pl.DataFrame) -> list[str]:
    _require(factors, _KEYS, "factors")
    names = [c for c in factors.columns if c not in _KEYS]
    if not names:
        raise ValueError("factors has no factor column besides date and symbol")
    non_numeric = [c for c in names if not (factors[c].dtype.is_numeric() or factors[c].dtype == pl.Boolean)]
    if non_numeric:
        raise ValueError(f"factor columns must be numeric: {non_numeric}")
    return names


def _check_dates(factors: pl.DataFrame, prices: pl.DataFrame) -> None:
    if factors["date"].dtype != prices["date"].dtype:
        raise ValueError(f"factors.date is {factors['date'].dtype} but prices.date is {prices['date'].dtype}")


def _clean(expr: pl.Expr) -> pl.Expr:
    """Float64 with NaN turned into null, so 'missing' has one meaning."""
    expr = expr.cast(pl.Float64)
    return pl.when(expr.is_nan()).then(None).otherwise(expr)


def forward_returns(prices: pl.DataFrame, periods: Iterable[int] = (1, 5, 10)) -> pl.DataFrame:
    """k-session forward returns with the t+1 alignment: ``close[t+1+k] / close[t+1] - 1``.

    Returns ``date``, ``symbol`` and one Float64 column ``fwd_{k}`` per period, one row per session
    from each symbol's first to its last price (sessions = the distinct dates of ``prices``). A
    return is null when either close is missing (absent row, null, NaN or ≤ 0) or the calendar ends
    too early. Sorted by symbol, date.
    """
    periods = _check_periods(periods)
    _require(prices, [*_KEYS, "close"], "prices")
    sessions = prices.select(pl.col("date").unique().sort()).with_row_index("idx")
    close = _clean(pl.col("close"))
    px = (
        prices.select(*_KEYS, pl.when(close > 0).then(close).alias("close"))
        .join(sessions, on="date", how="left")
        .select("symbol", pl.col("idx").cast(pl.Int64), "close")
    )
    grid = (
        px.group_by("symbol")
        .agg(pl.int_ranges(pl.col("idx").min(), pl.col("idx").max() + 1).first().alias("idx"))
        .explode("idx")
        .join(px, on=["symbol", "idx"], how="left")
    )
    by = ["symbol", "idx"]
    entry = grid.select("symbol", (pl.col("idx") - 1).alias("idx"), pl.col("close").alias("entry"))
    out = grid.select(by).join(entry, on=by, how="left")
    for k in periods:
        exit_ = grid.select("symbol", (pl.col("idx") - 1 - k).alias("idx"), pl.col("close").alias("exit"))
        out = out.join(exit_, on=by, how="left").with_columns(
            (pl.col("exit") / pl.col("entry") - 1.0).alias(f"fwd_{k}")
        )
        out = out.drop("exit")
    return (
        out.join(sessions.with_columns(pl.col("idx").cast(pl.Int64)), on="idx", how="left")
        .select("date", "symbol", *[f"fwd_{k}" for k in periods])
        .sort(["symbol", "date"])
    )


def _pairs(factors: pl.DataFrame, prices: pl.DataFrame, periods: list[int]) -> pl.DataFrame:
    """Valid (factor value, forward return) pairs: date, symbol, factor, period, value, fwd."""
    names = _factor_columns(factors)
    if factors["date"].dtype != prices["date"].dtype:
        raise ValueError(f"factors.date is {factors['date'].dtype} but prices.date is {prices['date'].dtype}")
    long_f = (
        factors.select(*_KEYS, *[_clean(pl.col(c)).alias(c) for c in names])
        .unpivot(on=names, index=_KEYS, variable_name="factor", value_name="value")
        .drop_nulls("value")
    )
    long_r = (
        forward_returns(prices, periods)
        .unpivot(index=_KEYS, variable_name="period", value_name="fwd")
        .with_columns(pl.col("period").str.strip_prefix("fwd_").cast(pl.Int64))
        .drop_nulls("fwd")
    )
    return long_f.join(long_r, on=_KEYS, how="inner")


def information_coefficient(
    factors: pl.DataFrame,
    prices: pl.DataFrame,
    periods: Iterable[int] = (1, 5, 10),
    min_names: int = 10,
) -> pl.DataFrame:
    """Per-date Spearman rank IC between each factor and its k-session forward return (alphalens).

    ``factors``: ``date``, ``symbol`` and factor columns (all other columns). ``prices``: ``date``,
    ``symbol``, ``close``. Forward returns use the t+1 alignment of :func:`forward_returns`. Pairs
    with a missing value are dropped, nothing is winsorised, and (date, factor, period) groups with
    fewer than ``min_names`` pairs are skipped. Ties get average ranks, so ``ic`` equals
    ``scipy.stats.spearmanr``; it is null when either side is constant on that date.

    Returns ``date``, ``factor`` (str), ``period`` (Int64), ``ic`` (Float64), ``n`` (Int64, names
    used), sorted by factor, period, date.
    """
    periods = _check_periods(periods)
    names = _factor_columns(factors)
    _check_dates(factors, prices)
    wide = factors.select(*_KEYS, *[_clean(pl.col(c)).alias(c) for c in names]).join(
        forward_returns(prices, periods), on=_KEYS, how="inner"
    )
    # One pass per date over the wide frame: each (factor, period) pair gets its own mask, so
    # a missing value drops that pair only.
    combos = [(i, name, k) for i, name in enumerate(names) for k in periods]
    aggs = []
    for i, name, k in combos:
        valid = pl.col(name).is_not_null() & pl.col(f"fwd_{k}").is_not_null()
        ranks = [pl.col(c).filter(valid).rank("average") for c in (name, f"fwd_{k}")]
        aggs += [pl.corr(*ranks).alias(f"ic_{i}_{k}"), valid.sum().cast(pl.Int64).alias(f"n_{i}_{k}")]
    per_date = wide.group_by("date").agg(aggs)
    schema = {
        "date": wide.schema["date"],
        "factor": pl.String,
        "period": pl.Int64,
        "ic": pl.Float64,
        "n": pl.Int64,
    }
    long = pl.concat(
        [
            per_date.select(
                "date",
                pl.lit(name, pl.String).alias("factor"),
                pl.lit(k, pl.Int64).alias("period"),
                pl.col(f"ic_{i}_{k}").cast(pl.Float64).alias("ic"),
                pl.col(f"n_{i}_{k}").alias("n"),
            )
            for i, name, k in combos
        ]
    ).cast(schema)
    return (
        long.filter(pl.col("n") >= min_names)
        .with_columns(pl.when(pl.col("ic").is_finite()).then(pl.col("ic")).alias("ic"))
        .sort(["factor", "period", "date"])
    )


def ic_summary(ic: pl.DataFrame) -> pl.DataFrame:
    """Per (factor, period): the alphalens IC table over the dates with a defined IC.

    ``mean_ic``; ``ic_std`` (ddof=1); ``ir`` = mean/std; ``t_stat`` = mean / (std / √n_dates);
    ``p_value`` two-sided from Student's t with n_dates - 1 degrees of freedom (the same as
    ``scipy.stats.ttest_1samp(ic, 0)``); ``hit_rate`` = share of dates with ic > 0; ``n_dates``.
    ``ir``, ``t_stat`` and ``p_value`` are null with fewer than two dates or a zero std.
    """
    table = (
        ic.drop_nulls("ic")
        .filter(pl.col("ic").is_not_nan())
        .group_by("factor", "period")
        .agg(
            pl.col("ic").mean().alias("mean_ic"),
            pl.col("ic").std(ddof=1).alias("ic_std"),
            (pl.col("ic") > 0).mean().alias("hit_rate"),
            pl.len().cast(pl.Int64).alias("n_dates"),
        )
        .with_columns(
            pl.when(pl.col("ic_std") > 0).then(pl.col("mean_ic") / pl.col("ic_std")).alias("ir"),
        )
        .with_columns((pl.col("ir") * pl.col("n_dates").cast(pl.Float64).sqrt()).alias("t_stat"))
        .sort("factor", "period")
    )
    t = table["t_stat"].to_numpy().astype(float)  # nulls become NaN
    df = table["n_dates"].to_numpy().astype(float) - 1.0
    with np.errstate(invalid="ignore"):
        from scipy import stats  # 0.45 s to import: only when p-values are asked for

        p = 2.0 * stats.t.sf(np.abs(t), np.where(df > 0, df, np.nan))
    table = table.with_columns(pl.Series("p_value", p, dtype=pl.Float64).fill_nan(None))
    return table.select(
        pl.col("factor"),
        pl.col("period").cast(pl.Int64),
        *[pl.col(c).cast(pl.Float64) for c in ["mean_ic", "ic_std", "ir", "t_stat", "p_value", "hit_rate"]],
        "n_dates",
    )


def rolling_ic(ic: pl.DataFrame, window: int = 20) -> pl.DataFrame:
    """Rolling mean IC per (factor, period) over the last ``window`` IC dates (rows, not calendar).

    Null until ``window`` defined ICs are in the window (pandas ``rolling(window).mean()``).
    Returns ``date``, ``factor``, ``period``, ``rolling_ic``.
    """
    if window < 1:
        raise ValueError(f"window must be ≥ 1, got {window}")
    return (
        ic.sort("factor", "period", "date")
        .with_columns(
            pl.col("ic")
            .rolling_mean(window, min_samples=window)
            .over("factor", "period")
            .cast(pl.Float64)
            .alias("rolling_ic")
        )
        .select("date", "factor", "period", "rolling_ic")
    )


def quantile_returns(
    factors: pl.DataFrame,
    prices: pl.DataFrame,
    factor: str,
    period: int = 5,
    quantiles: int = 5,
    min_names: int = 10,
) -> pl.DataFrame:
    """Mean ``period``-session forward return per factor quantile (1 = lowest factor values).

    Per date, among the names with both a factor value and a forward return (at least
    ``max(min_names, quantiles)`` of them), names are bucketed by average rank:
    ``quantile = floor((rank - 1) · quantiles / n) + 1`` — equal-count buckets like ``pd.qcut``,
    ties kept in one bucket. The per-date mean return of each bucket is then averaged over dates.
    Returns ``quantile`` (Int64), ``mean_return``, ``n_dates``, sorted by quantile.
    """
    if quantiles < 2:
        raise ValueError(f"quantiles must be ≥ 2, got {quantiles}")
    if factor not in _factor_columns(factors):
        raise ValueError(f"unknown factor {factor!r}")
    pairs = _pairs(factors.select(*_KEYS, factor), prices, [int(period)])
    return (
        pairs.with_columns(pl.len().over("date").alias("n"))
        .filter(pl.col("n") >= max(min_names, quantiles))
        .with_columns(
            ((pl.col("value").rank("average").over("date") - 1) * quantiles / pl.col("n"))
            .floor()
            .cast(pl.Int64)
            .add(1)
            .alias("quantile")
        )
        .group_by("date", "quantile")
        .agg(pl.col("fwd").mean())
        .group_by("quantile")
        .agg(pl.col("fwd").mean().alias("mean_return"), pl.len().cast(pl.Int64).alias("n_dates"))
        .sort("quantile")
    )


def correlated_pairs(factors: pl.DataFrame, threshold: float = 0.7) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Spearman correlation between factor columns, pooled over all (date, symbol) rows.

    Each pair uses the rows where both factors are present (pairwise deletion), average ranks for
    ties. Returns ``(matrix, pairs)``: ``matrix`` has a ``factor`` column and one column per factor
    (diagonal 1.0, null where undefined); ``pairs`` lists ``factor_a``, ``factor_b``, ``r``, ``n``
    for every pair with ``|r| > threshold``, strongest first.
    """
    names = _factor_columns(factors)
    clean = factors.select(*[_clean(pl.col(c)).alias(c) for c in names])
    complete = {c for c in names if clean[c].null_count() == 0}
    ranks = clean.select(*[pl.col(c).rank("average") for c in complete])  # reused when no row drops
    r: dict[tuple[str, str], float | None] = {}
    rows = []
    for i, a in enumerate(names):
        r[(a, a)] = 1.0
        for b in names[i + 1 :]:
            if a in complete and b in complete:
                value, n = ranks.select(pl.corr(a, b)).item(), ranks.height
            else:
                both = clean.select(a, b).drop_nulls()
                value = both.select(pl.corr(pl.col(a).rank("average"), pl.col(b).rank("average"))).item()
                n = both.height
            value = float(value) if value is not None and np.isfinite(value) else None
            r[(a, b)] = r[(b, a)] = value
            rows.append((a, b, value, n))
    matrix = pl.DataFrame(
        {"factor": names, **{b: [r[(a, b)] for a in names] for b in names}},
        schema={"factor": pl.String, **dict.fromkeys(names, pl.Float64)},
    )
    pairs = (
        pl.DataFrame(
            rows,
            schema={"factor_a": pl.String, "factor_b": pl.String, "r": pl.Float64, "n": pl.Int64},
            orient="row",
        )
        .filter(pl.col("r").abs() > threshold)
        .sort(pl.col("r").abs(), descending=True)
    )
    return matrix, pairs


# ---- performance ----------------------------------------------------------------------------
PERFORMANCE_KEYS = ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "win_rate")


def performance_summary(returns: object, periods_per_year: int = 252) -> dict[str, float]:
    """Performance of a series of simple periodic returns, with empyrical's conventions.

    ``returns``: a pandas or polars series (or any 1-d sequence) of simple returns, one per
    period, no missing values (fill or drop them first: empyrical would silently treat a NaN as
    a flat period in some metrics and skip it in others). Returns a dict:

    - ``total_return``: ``prod(1 + r) - 1``;
    - ``cagr``: ``prod(1 + r) ** (periods_per_year / n) - 1`` (geometric);
    - ``volatility``: ``std(r, ddof=1) * sqrt(periods_per_year)``;
    - ``sharpe``: ``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)`` (risk-free rate 0);
    - ``sortino``: ``mean(r) * periods_per_year / (sqrt(mean(min(r, 0)^2)) * sqrt(periods_per_year))``,
      the downside deviation below 0 taken over *all* periods;
    - ``max_drawdown``: the worst ``wealth / running peak - 1`` of the compounded curve starting at
      1 before the first period (a first-period loss is a drawdown), a negative fraction or 0;
    - ``win_rate``: the share of periods with ``r > 0``.

    NaN where undefined: no periods; fewer than 2 for volatility and Sharpe; a zero std or zero
    downside deviation for Sharpe and Sortino.
    """
    r = np.asarray(getattr(returns, "to_numpy", lambda: returns)(), dtype=float).ravel()
    if np.isnan(r).any():
        raise ValueError(
            "performance_summary: returns contain missing values (NaN or null); fill or drop them first"
        )
    n = r.size
    if n == 0:
        return dict.fromkeys(PERFORMANCE_KEYS, float("nan"))
    wealth = np.cumprod(1.0 + r)
    total = float(wealth[-1] - 1.0)
    # identical returns have no spread (np.std would return rounding noise, ~1e-19)
    std = float("nan") if n < 2 else 0.0 if np.ptp(r) == 0 else float(np.std(r, ddof=1))
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))
    peak = np.maximum.accumulate(np.concatenate(([1.0], wealth)))
    annual = np.sqrt(periods_per_year)
    return {
        "total_return": total,
        "cagr": float(wealth[-1] ** (periods_per_year / n) - 1.0),
        "volatility": std * annual,
        "sharpe": float(np.mean(r)) / std * annual if std > 0 else float("nan"),
        "sortino": float(np.mean(r)) * periods_per_year / (downside * annual)
        if downside > 0
        else float("nan"),
        "max_drawdown": float(np.min(np.concatenate(([1.0], wealth)) / peak - 1.0)),
        "win_rate": float(np.mean(r > 0)),
    }


# ---- overfitting: probabilistic and deflated Sharpe ratio, probability of backtest overfitting ---
EULER_MASCHERONI = 0.5772156649015329


def probabilistic_sharpe_ratio(
    sharpe: float, n_obs: int, skew: float, kurtosis: float, benchmark_sharpe: float = 0.0
) -> float:
    """Probability that the true Sharpe ratio exceeds ``benchmark_sharpe`` given the observed one
    (Bailey & López de Prado 2012, "The Sharpe ratio efficient frontier", J. of Risk 15(2)):

        PSR = Φ( (SR - SR*) · sqrt(n_obs - 1) / sqrt(1 - skew · SR + (kurtosis - 1) / 4 · SR²) )

    ``sharpe`` (SR) and ``benchmark_sharpe`` (SR*) are **per period**, not annualised
    (``mean / std`` of the ``n_obs`` periodic returns; an annual 252-day Sharpe S is
    ``S / sqrt(252)`` per day). ``skew`` is the returns' skewness and ``kurtosis`` their **Pearson**
    kurtosis (3 for normal returns; ``scipy.stats.kurtosis(r, fisher=False)``), not the excess.
    """
    if n_obs < 2:
        raise ValueError(f"probabilistic_sharpe_ratio: n_obs must be ≥ 2, got {n_obs}")
    if not all(np.isfinite(x) for x in (sharpe, skew, kurtosis, benchmark_sharpe)):
        raise ValueError("probabilistic_sharpe_ratio: sharpe, skew, kurtosis and benchmark must be finite")
    if kurtosis < 1:
        raise ValueError(
            f"probabilistic_sharpe_ratio: kurtosis is Pearson's (normal = 3), ≥ 1; got {kurtosis}"
        )
    variance = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if variance <= 0:
        raise ValueError(
            f"probabilistic_sharpe_ratio: 1 - skew·SR + (kurtosis - 1)/4·SR² = {variance:.3g} ≤ 0; "
            "is the Sharpe ratio annualised instead of per period?"
        )
    return NormalDist().cdf((sharpe - benchmark_sharpe) * np.sqrt(n_obs - 1.0) / np.sqrt(variance))


def expected_maximum_sharpe(n_trials: int, sharpe_variance_across_trials: float) -> float:
    """Expected maximum of ``n_trials`` per-period Sharpe ratios whose true value is 0, when the
    estimates vary across trials with variance ``V`` (Bailey & López de Prado 2014, eq. for SR₀,
    via the Euler-Mascheroni approximation of the expected maximum of normals):

        SR₀ = sqrt(V) · ((1 - γ) · Φ⁻¹(1 - 1/N) + γ · Φ⁻¹(1 - 1/(N·e))),   γ ≈ 0.5772

    0 for a single trial (nothing was selected).
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be ≥ 1, got {n_trials}")
    if not (np.isfinite(sharpe_variance_across_trials) and sharpe_variance_across_trials >= 0):
        raise ValueError(
            f"sharpe_variance_across_trials must be finite and ≥ 0, got {sharpe_variance_across_trials}"
        )
    if n_trials == 1:
        return 0.0
    z = NormalDist().inv_cdf
    g = EULER_MASCHERONI
    return float(
        np.sqrt(sharpe_variance_across_trials)
        * ((1.0 - g) * z(1.0 - 1.0 / n_trials) + g * z(1.0 - 1.0 / (n_trials * np.e)))
    )


def deflated_sharpe_ratio(
    sharpe: float,
    n_trials: int,
    n_obs: int,
    skew: float,
    kurtosis: float,
    sharpe_variance_across_trials: float,
) -> float:
    """Deflated Sharpe ratio (Bailey & López de Prado 2014, "The deflated Sharpe ratio: correcting
    for selection bias, backtest overfitting and non-normality", J. of Portfolio Management 40(5)):
    the :func:`probabilistic_sharpe_ratio` of the selected strategy against the Sharpe ratio the best
    of ``n_trials`` skill-less trials would be expected to show, ``SR₀`` of
    :func:`expected_maximum_sharpe`:

        DSR = PSR(SR* = SR₀) = Φ( (SR - SR₀) · sqrt(T - 1) / sqrt(1 - γ₃ · SR + (γ₄ - 1) / 4 · SR²) )

    All Sharpe inputs are **per period** (not annualised): ``sharpe`` is the selected strategy's,
    ``sharpe_variance_across_trials`` the variance of the per-period Sharpe ratios of all trials
    (an annualised variance V_a over 252-day years is ``V_a / 252``). ``n_obs`` (T) is the number
    of returns, ``skew`` (γ₃) and ``kurtosis`` (γ₄, Pearson: normal = 3) are those of the selected
    strategy's returns. A DSR above 0.95 rejects "no skill" at 5 % after the selection. The
    paper's example (annual SR 2.5, 100 trials, annual variance 0.5, T = 1250, γ₃ = -3, γ₄ = 10,
    250-day years) gives 0.9004.
    """
    benchmark = expected_maximum_sharpe(n_trials, sharpe_variance_across_trials)
    return probabilistic_sharpe_ratio(sharpe, n_obs, skew, kurtosis, benchmark_sharpe=benchmark)


def _block_sharpe(returns: np.ndarray) -> np.ndarray:
    """Per-column ``mean / std`` (ddof=1); a constant column scores 0, or ±inf if its mean is not 0."""
    mean = returns.mean(axis=0)
    flat = np.ptp(returns, axis=0) == 0  # np.std of constants is rounding noise, not 0
    std = np.where(flat, 1.0, returns.std(axis=0, ddof=1))
    degenerate = np.where(mean == 0, 0.0, np.copysign(np.inf, mean))
    return np.where(flat, degenerate, mean / std)


def probability_of_backtest_overfitting(returns_matrix: object, n_splits: int = 8) -> float:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV;
    Bailey, Borwein, López de Prado & Zhu 2017, "The probability of backtest overfitting",
    J. of Computational Finance 20(4), first circulated 2013–2015).

    ``returns_matrix``: T×M periodic returns (rows = periods in time order, columns = the M ≥ 2
    parameter sets tried), a numpy array or polars/pandas frame, no missing values. The rows are
    cut into ``n_splits`` = S (even) contiguous blocks (``np.array_split``: sizes differ by at most
    one row; each needs ≥ 2 rows). For each of the C(S, S/2) ways to choose S/2 blocks as the
    in-sample half (the rest, in time order, is the out-of-sample half):

    1. the configuration n* with the best in-sample Sharpe ratio (mean / std, ddof=1) is selected;
    2. its out-of-sample rank ω among the M configurations (1 = worst, M = best; ties share the
       average rank) gives the relative rank ω̄ = ω / (M + 1) and the logit λ = ln(ω̄ / (1 - ω̄)).

    PBO is the share of splits with λ ≤ 0: the in-sample winner does no better than the median
    out of sample. Pure-noise configurations give about 1/2 (or more); a configuration with a
    persistent edge, selected in-sample and still on top out of sample, drives it to 0. The cost is
    C(S, S/2) Sharpe evaluations of the T/2 × M half (70 for S = 8, 12,870 for S = 16).
    """
    m = np.asarray(getattr(returns_matrix, "to_numpy", lambda: returns_matrix)(), dtype=float)
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError(
            f"probability_of_backtest_overfitting: returns_matrix must be T×M with M ≥ 2 "
            f"configurations, got shape {m.shape}"
        )
    if not np.isfinite(m).all():
        raise ValueError("probability_of_backtest_overfitting: returns_matrix has missing or infinite values")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(
            f"probability_of_backtest_overfitting: n_splits must be even and ≥ 2, got {n_splits}"
        )
    if m.shape[0] < 2 * n_splits:
        raise ValueError(
            f"probability_of_backtest_overfitting: {m.shape[0]} periods are too few for {n_splits} "
            f"blocks of ≥ 2 periods"
        )
    blocks = np.array_split(np.arange(m.shape[0]), n_splits)
    n_configs = m.shape[1]
    logits = []
    for chosen in combinations(range(n_splits), n_splits // 2):
        train = np.zeros(m.shape[0], dtype=bool)
        train[np.concatenate([blocks[b] for b in chosen])] = True
        best = int(np.argmax(_block_sharpe(m[train])))
        test = _block_sharpe(m[~train])
        rank = 1.0 + np.sum(test < test[best]) + 0.5 * (np.sum(test == test[best]) - 1)
        relative = rank / (n_configs + 1.0)
        logits.append(np.log(relative / (1.0 - relative)))
    return float(np.mean(np.asarray(logits) <= 0))
