"""Core lending factors (SIM, BCS, UPI, FTZ, DTC_z, LPF) from a long history, for one day or many.

Input: ``history``, a long frame of validated snapshots (``date``, ``symbol`` and the normalised
feed columns of ``feed.FEED_SCHEMA``, one row per date and symbol). ``core_factors_range(history,
days)`` computes all six factors for every day in ``days`` in one vectorised pass (a backfill);
``core_factors(history, day)`` and the per-factor functions ``(history, day)`` are that pass on one
day: one row per symbol present on the day, ``date``, ``symbol`` and the factor column(s)
(``Float64``). A day reads only rows dated ``<= day``, so adding later rows never changes it.

Conventions (docs/lending.md has the formulas with worked numbers):
- A *session* is a distinct date of the history (the feed's trading days), counted back from
  ``day``; ``t-k`` is the k-th session before ``day``. ``LOOKBACK[factor]`` is how many earlier
  sessions a factor reads; ``lookback_sessions()`` is what the Dagster layer must load.
- Windowed factors need the name's value on *every* session of the window (and the endpoints for
  SIM); otherwise, or when the history is shorter than the window, the factor is null, never 0.
- Cross-sectional z: over the names on ``day`` whose raw value is not null,
  ``z = (x - mean) / std`` (sample std, ddof 1), then clipped to ``[-Z_CAP, Z_CAP]`` (this clip is
  the only winsorisation). Null for every name when fewer than ``MIN_NAMES`` values or std 0.
- Per-name z (BCS only): today's change over the name's own std of the previous changes.

How the range pass works: rows get a session index ``s`` and are grouped by name, ``s``
ascending; a name has a full n-session window at a row when the row n-1 places up is the same
name n-1 sessions earlier (rows are unique per date and symbol), and then ``shift(k)`` is its value k
sessions back. Window sums are written out term by term in a fixed order rather than as rolling
(add/subtract) sums, so a day's values depend only on its own window: they are bit-identical
whatever history lies before or after the window and whatever the row order of the input.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Sequence
from datetime import date

import polars as pl

SIM_SESSIONS = 20  # SIM: short-interest change over this many sessions
BCS_SESSIONS = 30  # BCS: std of the daily fee changes of this many previous sessions
BCS_SIGMA_FLOOR_BPS = 1.0  # BCS: the std is at least this (a flat fee would divide by zero)
UPI_SESSIONS = 20  # UPI: window, sessions including the day
UPI_THRESHOLD_PCT = 80.0  # UPI: a session counts as tight when utilisation >= this
FTZ_SESSIONS = 20  # FTZ: OLS window, sessions including the day
Z_CAP = 3.0  # cross-sectional z-scores are clipped to [-Z_CAP, Z_CAP]
MIN_NAMES = 3  # fewest names with a value for a cross-sectional z-score

# Earlier sessions each factor reads (the day itself not counted).
LOOKBACK: dict[str, int] = {
    "sim": SIM_SESSIONS,
    "bcs": BCS_SESSIONS + 1,  # 30 previous changes + today's change need 31 earlier fees
    "upi": UPI_SESSIONS - 1,
    "ftz": FTZ_SESSIONS - 1,
    "dtc_z": 0,
    "lpf": 0,
}
FACTOR_COLUMNS = tuple(LOOKBACK)
FACTOR_DESCRIPTIONS: dict[str, str] = {
    "sim": "Short-interest momentum: 20-session percent change of short interest, cross-sectional z "
    "(clipped at +/-3).",
    "bcs": "Borrow cost shock: 1-session fee change (bps) / the name's std of daily fee changes over the "
    "previous 30 sessions (floored at 1 bp); per-name z, not clipped.",
    "upi": "Utilisation persistence: share of the last 20 sessions with utilisation >= 80 %, 0..1, "
    "not z-scored.",
    "ftz": "Fee trend: OLS slope of the fee (bps per session) over the last 20 sessions, cross-sectional z "
    "(clipped at +/-3).",
    "dtc_z": "Days to cover: short interest / average daily volume, cross-sectional z (clipped at +/-3).",
    "lpf": "Locate proxy: mean of the cross-sectional z of the re-rate ratio and of B2B loans / on-loan "
    "quantity (each clipped at +/-3).",
}


def lookback_sessions(factors: Iterable[str] = FACTOR_COLUMNS) -> int:
    """Earlier sessions (before the day) needed to compute ``factors``: the partitions to load."""
    return max(LOOKBACK[name] for name in factors)


# ---- helpers ------------------------------------------------------------------------------
def zscore(x: pl.Expr) -> pl.Expr:
    """Cross-sectional z of ``x`` over the frame it is evaluated on (one date), clipped to +/-Z_CAP;
    null everywhere when fewer than ``MIN_NAMES`` non-null values or a zero std."""
    std = x.std(ddof=1)
    ok = (x.count() >= MIN_NAMES) & (std > 0)
    return pl.when(ok).then(((x - x.mean()) / std).clip(-Z_CAP, Z_CAP)).otherwise(None)


def _select(history: pl.DataFrame, columns: Iterable[str]) -> pl.DataFrame:
    """``date``, ``symbol`` and ``columns`` of ``history``; a missing column is named."""
    needed = list(dict.fromkeys(["date", "symbol", *columns]))
    missing = [c for c in needed if c not in history.columns]
    if missing:
        raise ValueError(f"lending history lacks column(s) {', '.join(missing)}")
    return history.select(needed)


# ---- the range pass -------------------------------------------------------------------------
# Columns each factor reads.
_READS: dict[str, tuple[str, ...]] = {
    "sim": ("short_interest",),
    "bcs": ("fee_bps",),
    "upi": ("utilization_pct",),
    "ftz": ("fee_bps",),
    "dtc_z": ("short_interest", "adv"),
    "lpf": ("rerate_ratio", "b2b_loans", "on_loan_qty"),
}


def _full_window(n: int) -> pl.Expr:
    """True where the row's name has a row on each of the ``n`` sessions ending at the row: with
    rows grouped by name, ``s`` ascending and unique, the row n-1 places up is that name n-1
    sessions back. Null (not true) near the top of the frame."""
    back = n - 1
    same_name = pl.col("symbol").shift(back) == pl.col("symbol")
    return same_name & (pl.col("s").shift(back) == pl.col("s") - back)


def _back(column: str, k: int) -> pl.Expr:
    """``column`` k rows up: the name's value k sessions back wherever ``_full_window`` holds."""
    return pl.col(column).shift(k)


def _total(terms: Iterable[pl.Expr]) -> pl.Expr:
    """``terms`` added left to right: a fixed order (the same bits wherever the window sits), and
    null when any term is null, so a missing value voids the window."""
    return functools.reduce(operator.add, terms)


# Per-name raw values, on the rows grouped by name, ``s`` ascending: each adds its column(s).
def _sim_raw(rows: pl.DataFrame) -> pl.DataFrame:
    """``sim_raw = si[t] / si[t-20] - 1`` where ``si[t-20] > 0``; a join on ``s - 20`` because only
    the endpoints are needed (the sessions between may be missing)."""
    start = rows.select("symbol", pl.col("s") + SIM_SESSIONS, _start=pl.col("short_interest"))
    rows = rows.join(start, on=["symbol", "s"], how="left", maintain_order="left")
    raw = pl.when(pl.col("_start") > 0).then(pl.col("short_interest") / pl.col("_start") - 1)
    return rows.with_columns(sim_raw=raw).drop("_start")


def _bcs(rows: pl.DataFrame) -> pl.DataFrame:
    """``bcs``: today's fee change over the clipped sample std of the 30 previous changes."""
    rows = rows.with_columns(_change=pl.col("fee_bps") - pl.col("fee_bps").shift(1))
    previous = [_back("_change", j) for j in range(BCS_SESSIONS, 0, -1)]  # Δf[t-30] .. Δf[t-1]
    rows = rows.with_columns(_mean=_total(previous) / BCS_SESSIONS)
    variance = _total((change - pl.col("_mean")) ** 2 for change in previous) / (BCS_SESSIONS - 1)
    sigma = variance.sqrt().clip(lower_bound=BCS_SIGMA_FLOOR_BPS)  # clip keeps a null a null
    bcs = pl.when(_full_window(BCS_SESSIONS + 2)).then(pl.col("_change") / sigma)
    return rows.with_columns(bcs=bcs).drop("_change", "_mean")


def _upi(rows: pl.DataFrame) -> pl.DataFrame:
    """``upi``: the count of tight sessions (an exact integer) as a share of the window. The share
    comes from a table of ``k / 20``: polars divides a column by a scalar as a product with the
    reciprocal (3 * (1/20) = 0.15000000000000002), and a share should be the nearest double."""
    rows = rows.with_columns(_tight=(pl.col("utilization_pct") >= UPI_THRESHOLD_PCT).cast(pl.Int32))
    tight = _total(_back("_tight", k) for k in range(UPI_SESSIONS))
    shares = {k: k / UPI_SESSIONS for k in range(UPI_SESSIONS + 1)}
    upi = pl.when(_full_window(UPI_SESSIONS)).then(tight.replace_strict(shares, return_dtype=pl.Float64))
    return rows.with_columns(upi=upi).drop("_tight")


def _ftz_slope(rows: pl.DataFrame) -> pl.DataFrame:
    """``ftz_slope``: ``sum((k - k̄)(fee - fee̅)) / sum((k - k̄)^2)`` over ``k = 0 .. 19``."""
    n = FTZ_SESSIONS
    fees = [_back("fee_bps", n - 1 - k) for k in range(n)]  # k = 0 (oldest) .. n-1 (the day)
    k_bar = (n - 1) / 2
    rows = rows.with_columns(_mean=_total(fees) / n)
    covariance = _total((k - k_bar) * (fee - pl.col("_mean")) for k, fee in enumerate(fees))
    slope = covariance / sum((k - k_bar) ** 2 for k in range(n))
    return rows.with_columns(ftz_slope=pl.when(_full_window(n)).then(slope)).drop("_mean")


def _dtc_raw(rows: pl.DataFrame) -> pl.DataFrame:
    """``dtc_raw``: days to cover, null when ``adv`` is not positive."""
    return rows.with_columns(
        dtc_raw=pl.when(pl.col("adv") > 0).then(pl.col("short_interest") / pl.col("adv"))
    )


def _b2b_share(rows: pl.DataFrame) -> pl.DataFrame:
    """``b2b_share``: B2B loans over on-loan quantity, null when that is not positive."""
    share = pl.when(pl.col("on_loan_qty") > 0).then(pl.col("b2b_loans") / pl.col("on_loan_qty"))
    return rows.with_columns(b2b_share=share)


_PER_NAME: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] = {
    "sim": _sim_raw,
    "bcs": _bcs,
    "upi": _upi,
    "ftz": _ftz_slope,
    "dtc_z": _dtc_raw,
    "lpf": _b2b_share,
}
# The cross-sectional step, on the rows of the requested days sorted by date and symbol.
_CROSS: dict[str, pl.Expr] = {
    "sim": zscore(pl.col("sim_raw")).over("date"),
    "bcs": pl.col("bcs"),
    "upi": pl.col("upi"),
    "ftz": zscore(pl.col("ftz_slope")).over("date"),
    "dtc_z": zscore(pl.col("dtc_raw")).over("date"),
    "lpf": (zscore(pl.col("rerate_ratio")).over("date") + zscore(pl.col("b2b_share")).over("date")) / 2,
}


def _name_rank(rows: pl.DataFrame) -> tuple[pl.Expr, int]:
    """The rank of ``symbol`` among the names of ``rows`` in lexical order, and how many: an
    integer sort key (sorting on it and an integer is ~3x faster than on the strings)."""
    names = rows["symbol"].unique().sort()
    ranks = pl.int_range(names.len(), dtype=pl.Int64, eager=True)
    return pl.col("symbol").replace_strict(names, ranks, return_dtype=pl.Int64), names.len()


def rows_by_name(
    history: pl.DataFrame, wanted: list[date], columns: Iterable[str], lookback: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows of the sessions from ``lookback`` before the first of ``wanted`` (sorted) to the
    last, ``columns`` only, with the session index ``s`` and the name's lexical rank ``_name``
    (of ``_names``), grouped by name, ``s`` ascending -- the layout the window terms shift over;
    and the sessions (``date``, ``s``). Raises for a day of ``wanted`` without rows and for
    duplicate (date, symbol) rows."""
    rows = _select(history, columns).filter(pl.col("date") <= wanted[-1])
    sessions = rows["date"].unique().sort()
    present = set(sessions.to_list())
    absent = [day for day in wanted if day not in present]
    if absent:
        raise ValueError(f"lending history has no rows for {absent[0]}")
    first = sessions.search_sorted(wanted[0])
    sessions = sessions[max(0, first - lookback) :]
    index = pl.DataFrame({"date": sessions, "s": pl.int_range(sessions.len(), dtype=pl.Int64, eager=True)})
    rows = rows.join(index, on="date", how="inner")
    rank, count = _name_rank(rows)
    rows = rows.with_columns(_name=rank, _names=pl.lit(count, pl.Int64))
    rows = rows.sort(pl.col("_name") * sessions.len() + pl.col("s"))
    dup = rows.filter((pl.col("symbol") == pl.col("symbol").shift(1)) & (pl.col("s") == pl.col("s").shift(1)))
    if dup.height:
        raise ValueError(f"lending history has duplicate (date, symbol) rows, e.g. {dup.row(0)[:2]}")
    return rows, index


def sorted_by_date(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` by date and symbol, flagged sorted by date (the sort flags it; stated since it
    matters): ``over("date")`` then reduces each date's contiguous slice as ``zscore`` does a
    frame of that date alone, the same bits as elsewhere. Unflagged, it gathers by index and
    sums in another order (last-bit differences)."""
    return rows.sort("date", "symbol").set_sorted("date")


def _factors(history: pl.DataFrame, days: Iterable[date], factors: Sequence[str]) -> pl.DataFrame:
    """``factors`` for every day in ``days``: ``date``, ``symbol``, one column per factor; one row
    per symbol on each day, sorted by date and symbol. Reads only the sessions from the first
    day's lookback to the last day."""
    wanted = sorted(set(days))
    rows = _select(history, (c for f in factors for c in _READS[f]))
    if not wanted:
        schema = {"date": pl.Date, "symbol": pl.String, **dict.fromkeys(factors, pl.Float64)}
        return pl.DataFrame(schema=schema)
    rows, _ = rows_by_name(rows, wanted, rows.columns, lookback_sessions(factors))
    for factor in factors:
        rows = _PER_NAME[factor](rows)
    out = sorted_by_date(rows.filter(pl.col("date").is_in(wanted)))
    return out.select("date", "symbol", *(_CROSS[f].cast(pl.Float64).alias(f) for f in factors))


def core_factors_range(history: pl.DataFrame, days: Sequence[date]) -> pl.DataFrame:
    """All six core factors for every day in ``days`` in one pass over ``history`` (a backfill):
    ``date``, ``symbol``, ``sim``, ``bcs``, ``upi``, ``ftz``, ``dtc_z``, ``lpf``; one row per
    symbol on each day, sorted by date and symbol. A day's rows equal ``core_factors`` of it."""
    return _factors(history, days, FACTOR_COLUMNS)


def core_factors(history: pl.DataFrame, day: date) -> pl.DataFrame:
    """All six core factors for ``day``: ``date``, ``symbol``, ``sim``, ``bcs``, ``upi``, ``ftz``,
    ``dtc_z``, ``lpf``; one row per symbol on ``day``, sorted by symbol."""
    return core_factors_range(history, [day])


# ---- factors one by one (the same pass, reading only the factor's columns) --------------------
def short_interest_momentum(history: pl.DataFrame, day: date) -> pl.DataFrame:
    """SIM: ``si[t] / si[t-20] - 1`` (20-session percent change of short interest, as a fraction),
    cross-sectional z clipped at +/-3. Needs the name's short interest on ``day`` and on the 20th
    earlier session, the latter > 0; otherwise null. Lookback 20 sessions.

    The vendor's ``on_loan_qty_month_diff`` is not used: its window (calendar month) and unit are
    the vendor's, while this change is measured on our own sessions.
    """
    return _factors(history, [day], ["sim"])


def borrow_cost_shock(history: pl.DataFrame, day: date) -> pl.DataFrame:
    """BCS: ``(fee[t] - fee[t-1]) / max(std(fee[s] - fee[s-1] for s = t-30 .. t-1), 1 bp)``.

    Per-name z (each name against its own recent volatility; sample std, ddof 1; not clipped).
    Needs the fee on all 32 sessions t-31 .. t; otherwise null. Lookback 31 sessions. Today's
    change is left out of the std so that a spike does not dampen itself.
    """
    return _factors(history, [day], ["bcs"])


def utilization_persistence(history: pl.DataFrame, day: date) -> pl.DataFrame:
    """UPI: share of the last 20 sessions (``day`` included) with utilisation >= 80 %, in [0, 1].

    Not z-scored (already comparable across names). Needs utilisation on all 20 sessions;
    otherwise null. Lookback 19 sessions. A share rather than the 20-day mean: 10 days at 100 %
    and 10 at 20 % average 60 % but are not persistently tight.
    """
    return _factors(history, [day], ["upi"])


def fee_trend_z(history: pl.DataFrame, day: date) -> pl.DataFrame:
    """FTZ: OLS slope of ``fee_bps`` on the session index ``k = 0 .. 19`` over the last 20 sessions
    (bps per session), ``sum((k - k̄)(fee - fee̅)) / sum((k - k̄)^2)``, then cross-sectional z
    clipped at +/-3. Needs the fee on all 20 sessions; otherwise null. Lookback 19 sessions.
    """
    return _factors(history, [day], ["ftz"])


def days_to_cover_z(history: pl.DataFrame, day: date) -> pl.DataFrame:
    """DTC_z: ``short_interest / adv`` (days to cover) on ``day``, cross-sectional z clipped at
    +/-3. Null when either is missing or ``adv`` is 0. Lookback 0."""
    return _factors(history, [day], ["dtc_z"])


def locate_proxy(history: pl.DataFrame, day: date) -> pl.DataFrame:
    """LPF: ``(z(rerate_ratio) + z(b2b_loans / on_loan_qty)) / 2`` on ``day``, each a
    cross-sectional z clipped at +/-3; the mean is not re-standardised. Null when either part is
    null (``on_loan_qty`` 0 or missing included). Lookback 0."""
    return _factors(history, [day], ["lpf"])


FACTORS: dict[str, Callable[[pl.DataFrame, date], pl.DataFrame]] = {
    "sim": short_interest_momentum,
    "bcs": borrow_cost_shock,
    "upi": utilization_persistence,
    "ftz": fee_trend_z,
    "dtc_z": days_to_cover_z,
    "lpf": locate_proxy,
}
