"""Core lending factors (SIM, BCS, UPI, FTZ, DTC_z, LPF) for one as-of day, from a long history.

Input: ``history``, a long frame of validated snapshots (``date``, ``symbol`` and the normalised
feed columns of ``feed.FEED_SCHEMA``, one row per date and symbol). Every function takes
``(history, day)`` and returns one row per symbol present on ``day``: ``date``, ``symbol`` and
its factor column (``Float64``). Only rows dated ``<= day`` are read, so adding later rows never
changes a day's factors.

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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


def rows_as_of(history: pl.DataFrame, day: date, columns: Iterable[str]) -> tuple[pl.DataFrame, pl.Series]:
    """Rows dated <= ``day`` (needed columns only) and the sorted sessions up to ``day``."""
    needed = ["date", "symbol", *columns]
    missing = [c for c in needed if c not in history.columns]
    if missing:
        raise ValueError(f"lending history lacks column(s) {', '.join(missing)}")
    past = history.select(needed).filter(pl.col("date") <= day)
    sessions = past["date"].unique().sort()
    if sessions.is_empty() or sessions[-1] != day:
        raise ValueError(f"lending history has no rows for {day}")
    return past, sessions


def session_panel(past: pl.DataFrame, sessions: pl.Series, n: int, column: str) -> pl.DataFrame | None:
    """``column`` for every name on the day over its last ``n`` sessions (``k`` = 0 oldest ..
    n-1 = the day), null where a name has no row; None when the history is shorter than ``n``."""
    if sessions.len() < n:
        return None
    window = pl.DataFrame({"date": sessions.tail(n), "k": pl.int_range(n, eager=True)})
    rows = past.join(window, on="date", how="inner")
    dup = rows.filter(pl.struct("date", "symbol").is_duplicated())
    if dup.height:
        raise ValueError(f"lending history has duplicate (date, symbol) rows, e.g. {dup.row(0)[:2]}")
    today = rows.filter(pl.col("k") == n - 1).select("symbol")
    panel = today.join(window, how="cross").join(rows.drop("k"), on=["date", "symbol"], how="left")
    return panel.sort("symbol", "k")  # a fixed order: sums are bit-identical whatever the input order


def _result(past: pl.DataFrame, day: date, name: str, values: pl.DataFrame | None) -> pl.DataFrame:
    """One row per symbol on ``day``: ``date``, ``symbol``, ``name`` (null where not computed)."""
    today = past.filter(pl.col("date") == day).select("date", "symbol")
    if values is None:
        return today.with_columns(pl.lit(None, pl.Float64).alias(name)).sort("symbol")
    out = today.join(values.select("symbol", pl.col(name).cast(pl.Float64)), on="symbol", how="left")
    return out.sort("symbol")


def _full(column: str) -> pl.Expr:
    """True when the name has a value on every session of its panel."""
    return pl.col(column).is_not_null().all()


# ---- factors ------------------------------------------------------------------------------
def short_interest_momentum(history: pl.DataFrame, day: date) -> pl.DataFrame:
    """SIM: ``si[t] / si[t-20] - 1`` (20-session percent change of short interest, as a fraction),
    cross-sectional z clipped at +/-3. Needs the name's short interest on ``day`` and on the 20th
    earlier session, the latter > 0; otherwise null. Lookback 20 sessions.

    The vendor's ``on_loan_qty_month_diff`` is not used: its window (calendar month) and unit are
    the vendor's, while this change is measured on our own sessions.
    """
    past, sessions = rows_as_of(history, day, ["short_interest"])
    panel = session_panel(past, sessions, SIM_SESSIONS + 1, "short_interest")
    if panel is None:
        return _result(past, day, "sim", None)
    ends = panel.group_by("symbol").agg(
        start=pl.col("short_interest").filter(pl.col("k") == 0).first(),
        end=pl.col("short_interest").filter(pl.col("k") == SIM_SESSIONS).first(),
    )
    raw = pl.when(pl.col("start") > 0).then(pl.col("end") / pl.col("start") - 1)
    return _result(past, day, "sim", ends.sort("symbol").with_columns(sim=zscore(raw)))


def borrow_cost_shock(history: pl.DataFrame, day: date) -> pl.DataFrame:
    """BCS: ``(fee[t] - fee[t-1]) / max(std(fee[s] - fee[s-1] for s = t-30 .. t-1), 1 bp)``.

    Per-name z (each name against its own recent volatility; sample std, ddof 1; not clipped).
    Needs the fee on all 32 sessions t-31 .. t; otherwise null. Lookback 31 sessions. Today's
    change is left out of the std so that a spike does not dampen itself.
    """
    past, sessions = rows_as_of(history, day, ["fee_bps"])
    n = BCS_SESSIONS + 2
    panel = session_panel(past, sessions, n, "fee_bps")
    if panel is None:
        return _result(past, day, "bcs", None)
    changes = panel.with_columns(change=pl.col("fee_bps").diff().over("symbol"))
    stats = changes.group_by("symbol").agg(
        full=_full("fee_bps"),
        today=pl.col("change").filter(pl.col("k") == n - 1).first(),
        sigma=pl.col("change").filter(pl.col("k").is_between(1, n - 2)).std(ddof=1),
    )
    bcs = pl.when(pl.col("full")).then(
        pl.col("today") / pl.max_horizontal("sigma", pl.lit(BCS_SIGMA_FLOOR_BPS))
    )
    return _result(past, day, "bcs", stats.with_columns(bcs=bcs))


def utilization_persistence(history: pl.DataFrame, day: date) -> pl.DataFrame:
    """UPI: share of the last 20 sessions (``day`` included) with utilisation >= 80 %, in [0, 1].

    Not z-scored (already comparable across names). Needs utilisation on all 20 sessions;
    otherwise null. Lookback 19 sessions. A share rather than the 20-day mean: 10 days at 100 %
    and 10 at 20 % average 60 % but are not persistently tight.
    """
    past, sessions = rows_as_of(history, day, ["utilization_pct"])
    panel = session_panel(past, sessions, UPI_SESSIONS, "utilization_pct")
    if panel is None:
        return _result(past, day, "upi", None)
    share = (pl.col("utilization_pct") >= UPI_THRESHOLD_PCT).mean()
    stats = panel.group_by("symbol").agg(upi=pl.when(_full("utilization_pct")).then(share))
    return _result(past, day, "upi", stats)


def fee_trend_z(history: pl.DataFrame, day: date) -> pl.DataFrame:
    """FTZ: OLS slope of ``fee_bps`` on the session index ``k = 0 .. 19`` over the last 20 sessions
    (bps per session), ``sum((k - k̄)(fee - fee̅)) / sum((k - k̄)^2)``, then cross-sectional z
    clipped at +/-3. Needs the fee on all 20 sessions; otherwise null. Lookback 19 sessions.
    """
    past, sessions = rows_as_of(history, day, ["fee_bps"])
    panel = session_panel(past, sessions, FTZ_SESSIONS, "fee_bps")
    if panel is None:
        return _result(past, day, "ftz", None)
    k, fee = pl.col("k").cast(pl.Float64), pl.col("fee_bps")
    slope = ((k - k.mean()) * (fee - fee.mean())).sum() / ((k - k.mean()) ** 2).sum()
    stats = panel.group_by("symbol").agg(slope=pl.when(_full("fee_bps")).then(slope))
    return _result(past, day, "ftz", stats.sort("symbol").with_columns(ftz=zscore(pl.col("slope"))))


def days_to_cover_z(history: pl.DataFrame, day: date) -> pl.DataFrame:
    """DTC_z: ``short_interest / adv`` (days to cover) on ``day``, cross-sectional z clipped at
    +/-3. Null when either is missing or ``adv`` is 0. Lookback 0."""
    past, _ = rows_as_of(history, day, ["short_interest", "adv"])
    today = past.filter(pl.col("date") == day).sort("symbol")  # fixed order: bit-identical sums
    dtc = pl.when(pl.col("adv") > 0).then(pl.col("short_interest") / pl.col("adv"))
    return _result(past, day, "dtc_z", today.with_columns(dtc_z=zscore(dtc)))


def locate_proxy(history: pl.DataFrame, day: date) -> pl.DataFrame:
    """LPF: ``(z(rerate_ratio) + z(b2b_loans / on_loan_qty)) / 2`` on ``day``, each a
    cross-sectional z clipped at +/-3; the mean is not re-standardised. Null when either part is
    null (``on_loan_qty`` 0 or missing included). Lookback 0."""
    past, _ = rows_as_of(history, day, ["rerate_ratio", "b2b_loans", "on_loan_qty"])
    today = past.filter(pl.col("date") == day).sort("symbol")  # fixed order: bit-identical sums
    b2b_share = pl.when(pl.col("on_loan_qty") > 0).then(pl.col("b2b_loans") / pl.col("on_loan_qty"))
    parts = today.with_columns(z_rerate=zscore(pl.col("rerate_ratio")), z_b2b=zscore(b2b_share))
    return _result(past, day, "lpf", parts.with_columns(lpf=(pl.col("z_rerate") + pl.col("z_b2b")) / 2))


FACTORS: dict[str, Callable[[pl.DataFrame, date], pl.DataFrame]] = {
    "sim": short_interest_momentum,
    "bcs": borrow_cost_shock,
    "upi": utilization_persistence,
    "ftz": fee_trend_z,
    "dtc_z": days_to_cover_z,
    "lpf": locate_proxy,
}


def core_factors(history: pl.DataFrame, day: date) -> pl.DataFrame:
    """All six core factors for ``day``: ``date``, ``symbol``, ``sim``, ``bcs``, ``upi``, ``ftz``,
    ``dtc_z``, ``lpf``; one row per symbol on ``day``, sorted by symbol."""
    past = history.filter(pl.col("date") <= day)  # read the long history once
    frames = [factor(past, day) for factor in FACTORS.values()]
    out = frames[0]
    for frame in frames[1:]:
        out = out.join(frame.drop("date"), on="symbol", how="left")
    return out.sort("symbol")
