"""A six-factor fundamental risk model (Barra-style): descriptors, exposures, factor returns,
factor covariance and specific variances. Pure polars/numpy, no Dagster.

The contract with the simulated equity market is ``/tmp/risk_spec.md`` (style factors in the
order of ``FACTORS``). Sessions are the distinct dates of ``prices``; a session on which a
symbol has no row, a null or a non-positive close is a *missing* close, and nothing is
forward-filled. Daily returns are simple close-to-close between consecutive sessions.

**Descriptors** of stock i as of session t (data up to t's close only):

- ``market``: OLS slope with intercept of the stock's daily returns on the market proxy's over
  the last ``BETA_WINDOW`` = 252 sessions, ``beta = (Σxy − ΣxΣy/n) / (Σx² − (Σx)²/n)`` over the
  n sessions where both returns exist; missing when n < ``BETA_MIN_OBS`` = 100.
- ``size``: ``ln(cap)``, ``cap = close_t × shares_outstanding_t``.
- ``value``: book-to-price ``book_value / cap`` (book value in dollars from the fundamentals);
  a name without fundamentals (no row, or a null book value) has value missing with the reason
  ``"no fundamentals for SYMBOL"`` — never zero-filled.
- ``momentum``: ``close[t−5] / close[t−68] − 1`` (63 sessions, skipping the latest
  ``MOMENTUM_SKIP`` = 5, a week, against short-term reversal); missing without both closes.
- ``volatility``: sample std (ddof=1) of the last 21 daily returns × √252; needs ≥ 20 returns.
- ``liquidity``: ``ln(mean turnover)`` over the last 21 sessions, turnover = volume / shares
  outstanding; needs ≥ 20 sessions with a turnover (and a positive mean).

Every rolling statistic is a difference of column cumulative sums over a sessions × stocks
matrix, so many dates and thousands of stocks cost a few array passes (no loop over stocks or
dates). Each missing descriptor's reason is recorded in ``missing_reason`` ('; '-joined).

**Exposures** (``standardise``): per date, each descriptor but ``market`` (beta stays raw, so
the market factor return reads as the return of a beta-1 portfolio) is winsorised at
mean ± 3 population std (ddof=0, as the simulated market does), then shifted and scaled to a
cap-weighted mean of 0 and an equal-weighted population std of 1: ``z = (x − Σ cap·x / Σ cap) / std(x)``. Nulls stay null.

**Factor returns** (``factor_returns``): the return of session t is regressed on the exposures
of t−1 (the styles, plus one dummy per sector) by weighted least squares with regression
weights ``w = √cap`` (cap of t−1), i.e. minimising ``Σ w·e²``. The sector dummies sum to one
(an intercept), so the sector returns are constrained to a cap-weighted sum of zero,
``Σ_s c_s f_s = 0`` with ``c_s`` the sector's share of the cap. It is solved by
re-parameterisation: the largest sector ``K`` is ``f_K = −Σ_{s≠K} (c_s / c_K) f_s``, an ordinary
least-squares problem in the remaining sectors on √w-scaled rows, solved through its normal
equations (``lstsq`` of the small k × k system: minimum-norm if a column is degenerate), so the
constraint holds exactly. Names with any missing exposure, sector, cap or return are left
out and counted. ``r2`` is the weighted R², ``1 − Σ w e² / Σ w (r − r̄_w)²``.

**Covariance** (``factor_covariance``): exponentially weighted over sessions with weights
``0.5 ** (age / half_life)`` (age 0 = the latest session), normalised to sum to 1, around the
weighted mean: ``Σ = Σ_k w_k (f_k − μ)(f_k − μ)ᵀ``. It is a weighted Gram matrix, so PSD in exact
arithmetic; rounding is removed by symmetrising and flooring the eigenvalues at 0. A factor
with no return on a session (a sector without names that day) counts as 0 there. Units are
**daily** (returns per session): VaR and volatility horizons scale it elsewhere
(× 252 annual, × h for h days).

**Specific variance** (``specific_variance``): per symbol, ``Σ w e² / Σ w`` over its observed
residuals (zero mean: residuals of a regression with an intercept), with the same half-life
weights (age counted in sessions of the residual frame). A name with n < ``SPECIFIC_HISTORY``
= 63 residuals is shrunk towards the cross-sectional median ``m`` of the names with a full
history, ``v = a·v_i + (1 − a)·m`` with ``a = n / 63``, and every variance is floored at
``SPECIFIC_FLOOR`` (a daily specific volatility of 0.1 %), so a short or flat history never
gives a name zero specific risk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

import numpy as np
import polars as pl

FACTORS: tuple[str, ...] = ("market", "size", "value", "momentum", "volatility", "liquidity")
STANDARDISED: tuple[str, ...] = FACTORS[1:]  # market beta stays raw
BETA_WINDOW = 252
BETA_MIN_OBS = 100
MOMENTUM_WINDOW = 63
MOMENTUM_SKIP = 5
VOL_WINDOW = 21
VOL_MIN_RETURNS = 20
LIQUIDITY_WINDOW = 21
LIQUIDITY_MIN_SESSIONS = 20
WINSOR_STD = 3.0
SESSIONS_PER_YEAR = 252
HALF_LIFE = 90.0
SPECIFIC_HISTORY = 63
SPECIFIC_FLOOR = 1e-6
_LOOKBACK = max(BETA_WINDOW, MOMENTUM_WINDOW + MOMENTUM_SKIP, VOL_WINDOW, LIQUIDITY_WINDOW)


class CrossSection(NamedTuple):
    """One session's regression: factor returns (styles, then one per sector), the residuals
    (``symbol``, ``specific_return``) of the names used, the weighted R², and how many names
    with a return were left out for a missing exposure, sector or cap."""

    factor_returns: dict[str, float]
    residuals: pl.DataFrame
    r2: float
    left_out: int


class FactorReturns(NamedTuple):
    """Regressions over many sessions: ``returns`` (``date`` and one column per factor, null for
    a sector without names that day), ``residuals`` (``date``, ``symbol``,
    ``specific_return``) and ``stats`` (``date``, ``r2``, ``used``, ``left_out``)."""

    returns: pl.DataFrame
    residuals: pl.DataFrame
    stats: pl.DataFrame


@dataclass(frozen=True)
class RiskModel:
    """The model as of ``day``: a stock's daily return is ``x·f + e`` with ``x`` its row of
    ``exposure_matrix``, ``Cov(f) = covariance`` and ``Var(e) = specific_variance``.

    ``covariance`` and ``specific`` are **daily** (per-session) variances; multiply by the
    horizon in sessions (252 for a year) to scale. ``factors`` orders the covariance's rows and
    columns: the styles, then the sectors.
    """

    day: date
    factors: tuple[str, ...]
    exposures: pl.DataFrame  # symbol, cap, sector, styles, missing_reason as of day
    covariance: np.ndarray  # daily factor covariance, len(factors) square
    specific: pl.DataFrame  # symbol, specific_variance (daily), observations

    def exposure_matrix(self, symbols: Sequence[str]) -> np.ndarray:
        """Rows of exposures (styles, then 0/1 sector dummies) for ``symbols`` in ``factors``
        order; a row is NaN where the symbol has no row, a missing style exposure or no sector of
        the model."""
        styles = [f for f in self.factors if f in FACTORS]
        sectors = self.factors[len(styles) :]
        rows = pl.DataFrame({"symbol": list(symbols)}).join(
            self.exposures, on="symbol", how="left", maintain_order="left"
        )
        style = rows.select(styles).to_numpy().astype(float)
        dummies = (rows["sector"].to_numpy()[:, None] == np.array(sectors, dtype=object)).astype(float)
        matrix = np.hstack([style, dummies])
        matrix[np.isnan(style).any(axis=1) | (dummies.sum(axis=1) == 0)] = np.nan
        return matrix


def descriptors(
    prices: pl.DataFrame, market: pl.DataFrame, fundamentals: pl.DataFrame, day: date
) -> pl.DataFrame:
    """Raw descriptors as of ``day`` (see the module docstring) for every symbol with a row on
    ``day``: ``symbol``, ``cap``, ``sector``, the six ``FACTORS`` and ``missing_reason``.

    ``prices``: ``date``, ``symbol``, ``close``, ``volume``, ``shares_outstanding``; ``market``:
    ``date``, ``close`` of the market proxy; ``fundamentals``: ``symbol``, ``book_value`` and
    optionally ``sector`` (and ``date`` for point-in-time rows, the latest on or before the day).
    """
    return descriptors_range(prices, market, fundamentals, [day]).drop("date")


def descriptors_range(
    prices: pl.DataFrame, market: pl.DataFrame, fundamentals: pl.DataFrame, days: Iterable[date]
) -> pl.DataFrame:
    """``descriptors`` for each of ``days`` (sessions of ``prices``) in one vectorised pass:
    ``date``, ``symbol``, ``cap``, ``sector``, the six ``FACTORS``, ``missing_reason``."""
    grid = _Grid.build(prices, market, days)
    at = grid.at
    close, volume, shares = grid.close, grid.volume, grid.shares
    with np.errstate(invalid="ignore", divide="ignore"):
        ret = np.vstack([np.full((1, close.shape[1]), np.nan), close[1:] / close[:-1] - 1.0])
        mret = np.concatenate([[np.nan], grid.market[1:] / grid.market[:-1] - 1.0])
        paired = np.isfinite(ret) & np.isfinite(mret)[:, None]
        x = np.where(paired, mret[:, None], 0.0)
        y = np.where(paired, ret, 0.0)
        n, sx, sy, sxx, sxy = (_rolling_sum(a, BETA_WINDOW, at) for a in (paired, x, y, x * x, x * y))
        var_x = sxx - sx * sx / n
        beta = np.where((n >= BETA_MIN_OBS) & (var_x > 0), (sxy - sx * sy / n) / var_x, np.nan)

        seen = np.isfinite(ret)
        r = np.where(seen, ret, 0.0)
        n_ret, s1, s2 = (_rolling_sum(a, VOL_WINDOW, at) for a in (seen, r, r * r))
        variance = np.maximum(s2 - s1 * s1 / n_ret, 0.0) / (n_ret - 1)
        volatility = np.where(n_ret >= VOL_MIN_RETURNS, np.sqrt(variance * SESSIONS_PER_YEAR), np.nan)

        turnover = volume / shares
        traded = np.isfinite(turnover)
        n_turn, s_turn = (
            _rolling_sum(a, LIQUIDITY_WINDOW, at) for a in (traded, np.where(traded, turnover, 0.0))
        )
        mean_turn = s_turn / n_turn
        liquidity = np.where((n_turn >= LIQUIDITY_MIN_SESSIONS) & (mean_turn > 0), np.log(mean_turn), np.nan)

        momentum = (
            _lagged(close, at, MOMENTUM_SKIP) / _lagged(close, at, MOMENTUM_SKIP + MOMENTUM_WINDOW) - 1.0
        )
        cap = close[at] * shares[at]
        cap = np.where(cap > 0, cap, np.nan)

    columns = {
        "cap": cap,
        "market": beta,
        "size": np.log(cap),
        "momentum": momentum,
        "volatility": volatility,
        "liquidity": liquidity,
        "_n_beta": n,
        "_n_ret": n_ret,
        "_n_turn": n_turn,
    }
    row, col = np.nonzero(grid.listed[at])
    frame = pl.DataFrame(
        {
            "date": pl.Series(grid.sessions[at][row]).cast(pl.Date),
            "symbol": grid.symbols.gather(col),
            **{name: values[row, col] for name, values in columns.items()},
        },
        nan_to_null=True,
    )
    frame = _join_fundamentals(frame, fundamentals).with_columns(value=pl.col("book_value") / pl.col("cap"))
    return frame.with_columns(missing_reason=_reasons()).select(
        "date", "symbol", "cap", "sector", *FACTORS, "missing_reason"
    )


def standardise(raw: pl.DataFrame, caps: pl.Series | Sequence[float] | np.ndarray) -> pl.DataFrame:
    """``raw`` with each of ``STANDARDISED`` winsorised at mean ± 3 std (ddof=0) and standardised to a
    cap-weighted mean 0 and an equal-weighted std 1, per ``date`` when ``raw`` has one (else the
    whole frame is one cross-section). ``caps`` is aligned with ``raw``'s rows; a null cap
    keeps the name out of the weighted mean only. ``market`` and other columns are unchanged."""
    by = "date" if "date" in raw.columns else None

    def over(expr: pl.Expr) -> pl.Expr:
        return expr.over(by) if by else expr

    frame = raw.with_columns(pl.Series("_cap", caps, dtype=pl.Float64, nan_to_null=True))
    clipped = frame.with_columns(
        pl.col(name).clip(
            over(pl.col(name).mean() - WINSOR_STD * pl.col(name).std(ddof=0)),
            over(pl.col(name).mean() + WINSOR_STD * pl.col(name).std(ddof=0)),
        )
        for name in STANDARDISED
    )
    weight = {
        name: pl.when(pl.col(name).is_not_null() & (pl.col("_cap") > 0)).then("_cap") for name in STANDARDISED
    }
    return clipped.with_columns(
        (
            (pl.col(name) - over((pl.col(name) * weight[name]).sum() / weight[name].sum()))
            / over(pl.col(name).std(ddof=0))
        ).fill_nan(None)
        for name in STANDARDISED
    ).drop("_cap")


def exposures_range(
    prices: pl.DataFrame, market: pl.DataFrame, fundamentals: pl.DataFrame, days: Iterable[date]
) -> pl.DataFrame:
    """Standardised exposures for each of ``days``: ``descriptors_range`` then ``standardise``
    per date (``cap`` is the raw market cap, ``market`` the raw beta)."""
    raw = descriptors_range(prices, market, fundamentals, days)
    return standardise(raw, raw["cap"])


def daily_returns(prices: pl.DataFrame) -> pl.DataFrame:
    """``date``, ``symbol``, ``ret`` = close_t / close_{t−1} − 1 between consecutive sessions (the
    distinct dates of ``prices``); no row where either close is missing or non-positive."""
    sessions = prices.select(pl.col("date").unique().sort()).with_row_index("_idx")
    close = pl.col("close").cast(pl.Float64)
    return (
        prices.select("date", "symbol", close=pl.when(close > 0).then(close))
        .drop_nulls("close")
        .join(sessions, on="date")
        .sort("symbol", "date")
        .with_columns(
            ret=pl.when(pl.col("_idx").diff().over("symbol") == 1).then(
                pl.col("close") / pl.col("close").shift().over("symbol") - 1.0
            )
        )
        .drop_nulls("ret")
        .select("date", "symbol", "ret")
        .sort("date", "symbol")
    )


def factor_returns(
    returns_t: pl.DataFrame, exposures_prev: pl.DataFrame, styles: Sequence[str] = FACTORS
) -> CrossSection:
    """One session's cross-sectional WLS of ``returns_t`` (``symbol``, ``ret``) on
    ``exposures_prev`` (``symbol``, ``styles``, ``sector``, ``cap`` of the previous session);
    see the module docstring for the weights and the sector constraint."""
    joined = returns_t.select("symbol", "ret").join(
        exposures_prev, on="symbol", how="left", maintain_order="left"
    )
    section = _cross_section(joined, list(styles))
    if section is None:
        raise ValueError(
            f"too few of {joined.height} names have every exposure to fit {len(styles)} styles and the sectors"
        )
    return section


def factor_returns_range(
    returns: pl.DataFrame, exposures: pl.DataFrame, styles: Sequence[str] = FACTORS
) -> FactorReturns:
    """``factor_returns`` for every date of ``returns`` (``date``, ``symbol``, ``ret``) that has
    an earlier date in ``exposures`` (``date``, ``symbol``, ``styles``, ``sector``, ``cap``):
    each session's returns meet the latest exposures strictly before it. Loops over dates (one
    least-squares solve each), never over stocks. A date with no more complete names than
    parameters (e.g. before a beta has 100 observations) gets no factor returns; ``stats``
    still lists it with ``used`` 0."""
    styles = list(styles)
    exposure_days = exposures.select(pl.col("date").unique().sort().alias("exposure_date"))
    dated = (
        returns.select("date", "symbol", "ret")
        .sort("date")
        .join_asof(
            exposure_days,
            left_on="date",
            right_on="exposure_date",
            strategy="backward",
            allow_exact_matches=False,
        )
        .drop_nulls("exposure_date")
    )
    joined = dated.join(
        exposures.rename({"date": "exposure_date"}),
        on=["exposure_date", "symbol"],
        how="left",
        maintain_order="left",
    ).drop("exposure_date")
    rows, residuals, stats = [], [], []
    for (day,), frame in joined.partition_by("date", as_dict=True, maintain_order=True).items():
        section = _cross_section(frame, styles)
        if section is None:
            stats.append({"date": day, "r2": None, "used": 0, "left_out": frame.height})
            continue
        rows.append({"date": day, **section.factor_returns})
        residuals.append(section.residuals.select(pl.lit(day).alias("date"), pl.all()))
        stats.append(
            {"date": day, "r2": section.r2, "used": section.residuals.height, "left_out": section.left_out}
        )
    if not rows:
        raise ValueError("no date of returns has enough names with exposures on an earlier date")
    sectors = sorted({k for row in rows for k in row} - {"date", *styles})
    table = pl.DataFrame(rows, schema={"date": pl.Date, **dict.fromkeys([*styles, *sectors], pl.Float64)})
    return FactorReturns(
        table,
        pl.concat(residuals),
        pl.DataFrame(
            stats, schema={"date": pl.Date, "r2": pl.Float64, "used": pl.Int64, "left_out": pl.Int64}
        ),
    )


def factor_covariance(factor_returns: pl.DataFrame, half_life: float = HALF_LIFE) -> np.ndarray:
    """Daily EW covariance of ``factor_returns`` (``date`` and one column per factor, in the
    order of the result's rows and columns); see the module docstring. PSD: eigenvalues ≥ 0."""
    frame = factor_returns.sort("date").drop("date")
    values = frame.fill_null(0.0).to_numpy().astype(float)
    weights = 0.5 ** (np.arange(len(values))[::-1] / half_life)
    weights /= weights.sum()
    centred = values - weights @ values
    covariance = (centred * weights[:, None]).T @ centred
    return _psd(covariance)


def specific_variance(residuals: pl.DataFrame, half_life: float = HALF_LIFE) -> pl.DataFrame:
    """Daily specific variance per symbol of ``residuals`` (``date``, ``symbol``,
    ``specific_return``): EW mean square, shrunk and floored for short histories (module
    docstring). Returns ``symbol``, ``specific_variance``, ``observations``."""
    dates = residuals.select(pl.col("date").unique().sort())
    ages = dates.with_columns(_age=pl.int_range(pl.len() - 1, -1, -1))
    weight = 0.5 ** (pl.col("_age") / half_life)
    per_name = (
        residuals.drop_nulls("specific_return")
        .join(ages, on="date")
        .group_by("symbol")
        .agg(
            raw=(weight * pl.col("specific_return") ** 2).sum() / weight.sum(),
            observations=pl.len(),
        )
    )
    full = per_name.filter(pl.col("observations") >= SPECIFIC_HISTORY)
    target = (full if full.height else per_name)["raw"].median()
    share = (pl.col("observations") / SPECIFIC_HISTORY).clip(upper_bound=1.0)
    return per_name.select(
        "symbol",
        specific_variance=(share * pl.col("raw") + (1 - share) * target).clip(lower_bound=SPECIFIC_FLOOR),
        observations="observations",
    ).sort("symbol")


def risk_model(
    exposures: pl.DataFrame,
    regressions: FactorReturns,
    day: date,
    half_life: float = HALF_LIFE,
    specific_half_life: float = HALF_LIFE,
) -> RiskModel:
    """The ``RiskModel`` as of ``day`` from ``exposures_range`` output (the rows of ``day``) and
    ``factor_returns_range`` output (the sessions up to and including ``day``)."""
    history = regressions.returns.filter(pl.col("date") <= day)
    if history.is_empty():
        raise ValueError(f"no factor returns on or before {day}")
    return RiskModel(
        day=day,
        factors=tuple(history.columns[1:]),
        exposures=exposures.filter(pl.col("date") == day).drop("date"),
        covariance=factor_covariance(history, half_life),
        specific=specific_variance(regressions.residuals.filter(pl.col("date") <= day), specific_half_life),
    )


@dataclass(frozen=True)
class _Grid:
    """``prices`` laid on a sessions × symbols matrix, trimmed to the lookback of ``at``."""

    sessions: np.ndarray  # datetime64[D], ascending
    symbols: pl.Series  # sorted
    close: np.ndarray
    volume: np.ndarray
    shares: np.ndarray
    listed: np.ndarray  # bool: the symbol has a row on the session
    market: np.ndarray  # market proxy close per session, NaN where missing
    at: np.ndarray  # rows of the requested days

    @classmethod
    def build(cls, prices: pl.DataFrame, market: pl.DataFrame, days: Iterable[date]) -> _Grid:
        wanted = np.unique(np.array(list(days), dtype="datetime64[D]"))
        sessions = np.unique(prices["date"].to_numpy().astype("datetime64[D]"))
        rows = _locate(sessions, wanted)
        if wanted.size == 0 or (rows < 0).any():
            raise ValueError(f"days must be sessions of prices; not: {wanted[rows < 0][:5].tolist()}")
        sessions = sessions[max(rows[0] - _LOOKBACK, 0) : rows[-1] + 1]
        window = prices.filter(pl.col("date").is_between(sessions[0].item(), sessions[-1].item()))
        codes = window.select(
            row=pl.col("date").rank("dense") - 1, col=pl.col("symbol").rank("dense") - 1
        )  # the window holds every session in it, so a date's dense rank is its row
        row, col = codes["row"].to_numpy(), codes["col"].to_numpy()
        symbols = window["symbol"].unique().sort()
        shape = (len(sessions), len(symbols))

        def matrix(name: str) -> np.ndarray:
            out = np.full(shape, np.nan)
            out[row, col] = window[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
            return out

        listed = np.zeros(shape, dtype=bool)
        listed[row, col] = True
        if listed.sum() != window.height:
            raise ValueError("prices has duplicate (date, symbol) rows")
        close = matrix("close")
        close[~(close > 0)] = np.nan
        proxy = np.full(len(sessions), np.nan)
        where = _locate(sessions, market["date"].to_numpy().astype("datetime64[D]"))
        proxy[where[where >= 0]] = market["close"].cast(pl.Float64).fill_null(np.nan).to_numpy()[where >= 0]
        proxy[~(proxy > 0)] = np.nan
        at = _locate(sessions, wanted)
        return cls(
            sessions, symbols, close, matrix("volume"), matrix("shares_outstanding"), listed, proxy, at
        )


def _locate(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each of ``values`` in ``sorted_values``, −1 where absent."""
    index = np.searchsorted(sorted_values, values)
    clipped = np.minimum(index, len(sorted_values) - 1)
    return np.where((index < len(sorted_values)) & (sorted_values[clipped] == values), index, -1)


def _lagged(matrix: np.ndarray, rows: np.ndarray, lag: int) -> np.ndarray:
    """The rows ``lag`` sessions before ``rows`` (NaN before the first session)."""
    out = matrix[np.maximum(rows - lag, 0)]
    out[rows < lag] = np.nan
    return out


def _rolling_sum(values: np.ndarray, window: int, rows: np.ndarray) -> np.ndarray:
    """Sum of ``values`` (sessions × stocks) over the ``window`` rows ending at each of ``rows``
    (fewer at the start), as a difference of cumulative sums: one pass for all rows."""
    total = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0, dtype=float)])
    return total[rows + 1] - total[np.maximum(rows + 1 - window, 0)]


def _join_fundamentals(frame: pl.DataFrame, fundamentals: pl.DataFrame) -> pl.DataFrame:
    """``book_value`` and ``sector`` per row of ``frame``: static fundamentals by symbol, or the
    latest dated row on or before the row's date when ``fundamentals`` has a ``date``."""
    wanted = ["symbol", "book_value"] + (["sector"] if "sector" in fundamentals.columns else [])
    if "date" in fundamentals.columns:
        joined = frame.sort("date").join_asof(
            fundamentals.select("date", *wanted).sort("date"),
            on="date",
            by="symbol",
            strategy="backward",
            check_sortedness=False,  # both sides are sorted by date just above
        )
    else:
        joined = frame.join(fundamentals.select(wanted), on="symbol", how="left")
    if "sector" not in joined.columns:
        joined = joined.with_columns(sector=pl.lit(None, pl.String))
    return joined.with_columns(pl.col("book_value").cast(pl.Float64)).sort("date", "symbol")


def _reasons() -> pl.Expr:
    """The '; '-joined reason of every missing descriptor (null when none is missing)."""
    missing = {name: pl.col(name).is_null() for name in FACTORS}
    parts = [
        pl.when(missing["market"] & (pl.col("_n_beta") < BETA_MIN_OBS))
        .then(
            pl.format(
                f"market: {{}} daily returns paired with the market in {BETA_WINDOW} sessions, need {BETA_MIN_OBS}",
                pl.col("_n_beta").cast(pl.Int64),
            )
        )
        .when(missing["market"])
        .then(pl.lit("market: the market proxy's returns have no variance")),
        pl.when(missing["size"]).then(pl.lit("size: no close or shares outstanding on the day")),
        pl.when(pl.col("book_value").is_null())
        .then(pl.format("no fundamentals for {}", "symbol"))
        .when(missing["value"])
        .then(pl.lit("value: no market cap")),
        pl.when(missing["momentum"]).then(
            pl.lit(
                f"momentum: needs the closes {MOMENTUM_SKIP} and {MOMENTUM_SKIP + MOMENTUM_WINDOW} sessions back"
            )
        ),
        pl.when(missing["volatility"]).then(
            pl.format(
                f"volatility: {{}} daily returns in {VOL_WINDOW} sessions, need {VOL_MIN_RETURNS}",
                pl.col("_n_ret").cast(pl.Int64),
            )
        ),
        pl.when(missing["liquidity"] & (pl.col("_n_turn") < LIQUIDITY_MIN_SESSIONS))
        .then(
            pl.format(
                f"liquidity: {{}} sessions with a turnover in {LIQUIDITY_WINDOW}, need {LIQUIDITY_MIN_SESSIONS}",
                pl.col("_n_turn").cast(pl.Int64),
            )
        )
        .when(missing["liquidity"])
        .then(pl.lit("liquidity: zero turnover")),
    ]
    joined = pl.concat_str(parts, separator="; ", ignore_nulls=True)
    return pl.when(joined != "").then(joined)


def _cross_section(joined: pl.DataFrame, styles: list[str]) -> CrossSection | None:
    """The WLS of ``ret`` on ``styles`` and sector dummies over the complete rows of ``joined``
    (``symbol``, ``ret``, ``styles``, ``sector``, ``cap``), sector returns constrained to a
    cap-weighted sum of 0 by re-parameterisation (module docstring); None when there are no
    more complete rows than parameters."""
    needed = ["ret", *styles, "sector", "cap"]
    complete = joined.filter(
        pl.all_horizontal(pl.col(needed).is_not_null()) & pl.all_horizontal(pl.col(styles).is_not_nan())
    ).filter(pl.col("cap") > 0)
    sectors = complete["sector"].unique().sort().to_list()
    code = (complete["sector"].rank("dense") - 1).to_numpy()
    n_params = len(styles) + len(sectors) - 1
    if complete.height <= n_params:
        return None
    ret = complete["ret"].cast(pl.Float64).to_numpy()
    cap = complete["cap"].cast(pl.Float64).to_numpy()
    style = complete.select(styles).to_numpy().astype(float)
    share = np.bincount(code, weights=cap) / cap.sum()
    ref = int(np.argmax(share))
    free = np.delete(np.arange(len(sectors)), ref)
    # f_sectors = C θ: θ are the free sectors' returns, the reference sector's is −Σ (c_s / c_ref) θ_s.
    constraint = np.zeros((len(sectors), len(free)))
    constraint[free, np.arange(len(free))] = 1.0
    constraint[ref] = -share[free] / share[ref]
    dummies = np.zeros((len(ret), len(sectors)))
    dummies[np.arange(len(ret)), code] = 1.0
    design = np.hstack([style, dummies @ constraint])
    weight = np.sqrt(cap)
    root = np.sqrt(weight)
    scaled = design * root[:, None]
    theta = np.linalg.lstsq(scaled.T @ scaled, scaled.T @ (ret * root), rcond=None)[0]
    coefficients = np.concatenate([theta[: len(styles)], constraint @ theta[len(styles) :]])
    residual = ret - np.hstack([style, dummies]) @ coefficients
    mean = weight @ ret / weight.sum()
    r2 = 1.0 - float(weight @ residual**2) / float(weight @ (ret - mean) ** 2)
    names = [*styles, *sectors]
    return CrossSection(
        dict(zip(names, coefficients.tolist(), strict=True)),
        pl.DataFrame({"symbol": complete["symbol"], "specific_return": residual}),
        r2,
        joined.height - complete.height,
    )


def _psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric part of ``matrix`` with its eigenvalues floored at 0."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    floored = (vectors * np.maximum(values, 0.0)) @ vectors.T
    return (floored + floored.T) / 2
