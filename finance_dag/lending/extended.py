"""Extended lending factors: the lending feed read against credit, options, ETF-flow, macro,
ESG and social data.

Inputs for an as-of session ``t`` (``ExtendedInputs``; every input but the lending history may
be missing, given as the reason why instead of a frame):

- ``history``: validated lending snapshots up to ``t`` (``feed.FEED_SCHEMA``), at least the
  ``TS_SESSIONS`` sessions ending at ``t``;
- ``market``: one row per session, ``date`` and the series of ``MARKET_COLUMNS`` as they were
  *published* by that session (``market_as_of`` applies each series' publication lag), with
  the reason per series whose source failed (``Market``);
- ``etf_shares``: the day's ETF shares-outstanding file (``ETF_SHARES``);
- ``esg``: the latest ESG scores file (``ESG_SCORES``) delivered at most ``ESG_MAX_AGE_DAYS``
  before ``t``;
- ``mentions``: the social-mention files (``SOCIAL_MENTIONS``) of the ``BUZZ_SESSIONS`` + 1
  sessions ending at ``t``, long, with why any of them is missing or unusable.

Formulas (``z_cs``: cross-sectional z over the day's names, clipped at +/-3, ``factors.zscore``;
``z_ts``: a time-series z over the ``TS_SESSIONS`` sessions ending at ``t``,
``(x_t - mean) / std`` with ddof 1, not clipped):

    borrow_cds_basis  = z_ts(ln fee) - z_ts(ln hy_oas)
    options_skew_div  = (z_ts(ln fee) + z_ts(utilisation)) / 2 - z_ts(skew)
    etf_flow_pressure = z_cs(on_loan / so_t - on_loan / (so_t - change_t))
    macro_stress      = z_cs(utilisation) * stress_t
    esg_constraint    = (z_cs(-esg_score) + z_cs(-ln(1 + lender_count))) / 2
    crowd_buzz        = z_cs(ln(1 + m_t) - mean(ln(1 + m_s) for s = t-5 .. t-1))

A factor whose input is missing is null, never 0, and ``null_reasons`` says why for each name
(``factor: reason; ...``). docs/lending.md explains each choice.

``extended_factors_range(ExtendedRangeInputs, days)`` computes every day of a backfill in one
vectorised pass; ``extended_factors`` and the per-factor functions are that pass on one day. It
works as ``factors.core_factors_range`` does: lending rows grouped by name with a session index
``s``, window terms written out by shifts in a fixed order (a day's value depends only on its own
window: bit-identical whatever history lies around it or the row order), and the cross-sectional
z-scores taken ``.over("date")`` on a frame sorted by date and symbol.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import polars as pl

from finance_dag.core.settings import LENDING_MACRO_SERIES
from finance_dag.lending.factors import _back, _full_window, _total, rows_by_name, sorted_by_date, zscore
from finance_dag.lending.feed import Delivery, complete_file

TS_SESSIONS = 20  # time-series z window of the basis and the skew divergence, sessions incl. t
BUZZ_SESSIONS = 5  # earlier sessions the mention velocity compares today with
ESG_MAX_AGE_DAYS = 95  # an ESG file older than this (a missed quarterly refresh) is not used
STALE_AFTER_DAYS = 14  # a market observation older than this on a session is not carried forward
LOOKBACK = TS_SESSIONS - 1  # earlier lending sessions the extended factors read

# Market series: role -> default id and the days after its observation date before it is public.
MARKET_SERIES: dict[str, str] = {**LENDING_MACRO_SERIES, "skew": "SKEW"}
PUBLICATION_LAG_DAYS: dict[str, int] = {
    "hy_oas": 1,  # ICE BofA OAS of a day is published the next business day
    "vix": 0,  # the VIX close is known at the close
    "stress": 6,  # STLFSI4 for the week ending Friday is released the next Thursday
    "skew": 0,  # the SKEW close is known at the close
}
MARKET_COLUMNS = tuple(MARKET_SERIES)
MARKET_SCHEMA = pl.Schema({"date": pl.Date, **dict.fromkeys(MARKET_COLUMNS, pl.Float64)})
OBSERVATION_SCHEMA = pl.Schema({"date": pl.Date, "series_id": pl.String, "value": pl.Float64})  # FRED's shape

ETF_SHARES = complete_file(
    "ETF shares outstanding",
    "etf_shares_",
    pl.Schema(
        {
            "date": pl.Date,
            "symbol": pl.String,
            "shares_outstanding": pl.Float64,
            "shares_outstanding_change": pl.Float64,
        }
    ),
    non_negative=("shares_outstanding",),
)
ESG_SCORES = complete_file(
    "ESG scores",
    "esg_scores_",
    pl.Schema({"date": pl.Date, "symbol": pl.String, "esg_score": pl.Float64}),
    non_negative=("esg_score",),
    maxima={"esg_score": 10.0},
)
SOCIAL_MENTIONS = complete_file(
    "social mentions",
    "social_mentions_",
    pl.Schema({"date": pl.Date, "symbol": pl.String, "mentions": pl.Int64}),
    non_negative=("mentions",),
)
SKEW_FILE = complete_file(
    "CBOE SKEW history",
    "cboe_skew",
    pl.Schema({"date": pl.Date, "skew": pl.Float64}),
    non_negative=("skew",),
    key="date",
    key_plural="dates",
    dated=False,
)
DROPS: dict[str, Delivery] = {
    "etf_shares": ETF_SHARES,
    "esg_scores": ESG_SCORES,
    "social_mentions": SOCIAL_MENTIONS,
}

EXTENDED_COLUMNS = (
    "borrow_cds_basis",
    "options_skew_div",
    "etf_flow_pressure",
    "macro_stress",
    "esg_constraint",
    "crowd_buzz",
)
EXTENDED_DESCRIPTIONS: dict[str, str] = {
    "borrow_cds_basis": "Borrow-CDS basis: z_ts(ln fee) - z_ts(ln HY OAS) over the last 20 sessions; positive "
    "when borrowing got dear relative to the name's history while credit spreads did not.",
    "options_skew_div": "Options-skew divergence: (z_ts(ln fee) + z_ts(utilisation)) / 2 - z_ts(CBOE SKEW) over "
    "the last 20 sessions; positive when lending tightens while tail hedges stay cheap.",
    "etf_flow_pressure": "ETF flow pressure: on-loan quantity / shares outstanding after the day's "
    "creations/redemptions minus the same before them, cross-sectional z over the ETFs (clipped at +/-3).",
    "macro_stress": "Macro liquidity stress: cross-sectional z of utilisation times the St. Louis stress "
    "index published by the day (0 = average stress).",
    "esg_constraint": "ESG constraint gauge: (z(-ESG score) + z(-ln(1 + lender count))) / 2, each "
    "cross-sectional and clipped at +/-3; high when a low ESG score meets few lenders.",
    "crowd_buzz": "Crowd buzz pulse: z of ln(1 + mentions today) - mean ln(1 + mentions) of the 5 sessions "
    "before, cross-sectional (clipped at +/-3); a name absent from a day's file had 0 mentions.",
}

Input = pl.DataFrame | str  # a frame, or the reason it is missing


@dataclass(frozen=True)
class Market:
    """The market series per session (``MARKET_SCHEMA``), the reason per role whose source
    failed, and the series id per role (for messages)."""

    frame: pl.DataFrame
    missing: Mapping[str, str] = field(default_factory=dict)
    series_ids: Mapping[str, str] = field(default_factory=lambda: dict(MARKET_SERIES))


@dataclass(frozen=True)
class Mentions:
    """Social-mention rows (``date``, ``symbol``, ``mentions``) of the files that served, and
    why each session without a usable file has none."""

    rows: pl.DataFrame
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExtendedInputs:
    """Everything the extended factors of one session read (see the module docstring)."""

    history: pl.DataFrame
    market: Market
    etf_shares: Input
    esg: Input
    mentions: Mentions | str


@dataclass(frozen=True)
class ExtendedRangeInputs:
    """Everything the extended factors of many sessions read: the lending ``history`` from
    ``LOOKBACK`` sessions before the first day to the last, the ``market`` over those sessions,
    and per as-of day the ETF file, the ESG file and the mentions (as in ``ExtendedInputs``; a
    day absent from a mapping has that input missing). Days whose ``Mentions`` share one
    ``rows`` frame (e.g. the union of every file of the range) are computed together."""

    history: pl.DataFrame
    market: Market
    etf_shares: Mapping[date, Input]
    esg: Mapping[date, Input]
    mentions: Mapping[date, Mentions | str]


# ---- market series ------------------------------------------------------------------------
def market_as_of(
    observations: pl.DataFrame, sessions: list[date], series_ids: Mapping[str, str] = MARKET_SERIES
) -> pl.DataFrame:
    """The market series as known at each session's close: ``date`` and one column per role.

    ``observations``: ``date``, ``series_id``, ``value`` (FRED's shape; SKEW included under its
    id). An observation dated ``d`` becomes usable on ``d + PUBLICATION_LAG_DAYS[role]``; each
    session takes the latest usable one no older than ``STALE_AFTER_DAYS``, else null.
    """
    out = pl.DataFrame({"date": sessions}, schema={"date": pl.Date}).sort("date")
    for role, series_id in series_ids.items():
        lag = timedelta(days=PUBLICATION_LAG_DAYS[role])
        series = (
            observations.filter(pl.col("series_id") == series_id, pl.col("value").is_not_null())
            .select(usable=pl.col("date") + lag, observed=pl.col("date"), value=pl.col("value"))
            .sort("usable")
        )
        joined = out.join_asof(series, left_on="date", right_on="usable", strategy="backward")
        fresh = (pl.col("date") - pl.col("observed")) <= timedelta(days=STALE_AFTER_DAYS)
        out = out.with_columns(joined.select(pl.when(fresh).then(pl.col("value")).alias(role)).to_series())
    return out.cast(dict(MARKET_SCHEMA))


# ---- helpers ------------------------------------------------------------------------------
_ANY_DAY = date(1970, 1, 1)  # the as-of label of a lone snapshot (the per-factor functions)
_TS_FACTORS = {"borrow_cds_basis": "hy_oas", "options_skew_div": "skew"}  # factor -> market role
_LOG_ROLES = {"hy_oas"}  # market series whose log is z-scored


def _why(name: str) -> str:
    return f"_why_{name}"


def _z_terms(column: str, n: int) -> list[pl.Expr]:
    """The ``n`` values of ``column`` ending at the row, less the row's own, oldest first (rows
    grouped by name, ``s`` ascending): a constant window is exactly 0."""
    return [_back(column, k) - pl.col(column) for k in range(n - 1, -1, -1)]


def _with_z(rows: pl.DataFrame, columns: Iterable[str], n: int) -> pl.DataFrame:
    """``rows`` with ``_z_{column}``, the time-series z of the row's value over the ``n`` rows
    ending at it (ddof 1; null when the std is 0), for each of ``columns``. Written with the
    values less the row's own, added in a fixed order: a constant window has a std of exactly 0,
    and a row's z depends on its window only."""
    columns = list(columns)
    rows = rows.with_columns((_total(_z_terms(c, n)) / n).alias(f"_mean_{c}") for c in columns)
    variance = {c: _total((t - pl.col(f"_mean_{c}")) ** 2 for t in _z_terms(c, n)) / (n - 1) for c in columns}
    rows = rows.with_columns(v.sqrt().alias(f"_std_{c}") for c, v in variance.items())
    z = (pl.when(pl.col(f"_std_{c}") > 0).then(-pl.col(f"_mean_{c}") / pl.col(f"_std_{c}")) for c in columns)
    rows = rows.with_columns(e.alias(f"_z_{c}") for e, c in zip(z, columns, strict=True))
    return rows.drop(*(f"_{p}_{c}" for c in columns for p in ("mean", "std")))


def _day_value(values: Mapping[date, object], dtype: pl.DataType) -> pl.Expr:
    """A value per ``date`` (null for the dates not in ``values``)."""
    if not values:
        return pl.lit(None, dtype)
    keys = pl.Series(list(values), dtype=pl.Date)
    return pl.col("date").replace_strict(keys, pl.Series(list(values.values()), dtype=dtype), default=None)


def _market_terms(
    market: Market, index: pl.DataFrame, wanted: list[date], roles: Iterable[str]
) -> pl.DataFrame:
    """Per day of ``wanted``: ``_why_short`` when it has fewer than ``TS_SESSIONS`` lending
    sessions; ``_mkt_{role}``, the z_ts of the role's series over the ``TS_SESSIONS`` lending
    sessions ending at the day (the same window terms as the names'), and ``_why_mkt_{role}``
    when it cannot be computed (the source failed, a session without a value, a constant
    series). One series, so the reasons are written day by day."""
    n = TS_SESSIONS
    roles = list(roles)
    known = [r for r in roles if r not in market.missing]
    series = index.join(market.frame.select("date", *known), on="date", how="left", maintain_order="left")
    series = series.sort("s").with_columns(
        (pl.col(r).log() if r in _LOG_ROLES else pl.col(r)).alias(f"x_{r}") for r in known
    )
    series = _with_z(series, (f"x_{r}" for r in known), n)
    absent = {r: _total(_back(r, k).is_null().cast(pl.Int64) for k in range(n)) for r in known}
    days = series.with_columns(**{f"_absent_{r}": e for r, e in absent.items()}).filter(
        pl.col("date").is_in(wanted)
    )
    out: dict[str, list] = {
        "date": days["date"].to_list(),
        _why("short"): [
            f"fewer than {n} lending sessions to {day}" if s < n - 1 else None
            for day, s in days.select("date", "s").iter_rows()
        ],
    }
    for role in roles:
        values, reasons = [], []
        if role in market.missing:
            values, reasons = [None] * days.height, [market.missing[role]] * days.height
        else:
            series_id = market.series_ids[role]
            for day, s, absent_n, z in days.select(
                "date", "s", f"_absent_{role}", f"_z_x_{role}"
            ).iter_rows():
                reason = None
                if s < n - 1:
                    pass  # too few lending sessions: the lending reason says so (and the value is null)
                elif absent_n:
                    reason = f"{series_id} not published for {absent_n} of the {n} sessions to {day}"
                elif z is None:
                    reason = f"{series_id} constant over the {n} sessions to {day}"
                values.append(None if reason is not None or s < n - 1 else z)
                reasons.append(reason)
        out[f"_mkt_{role}"], out[_why(f"mkt_{role}")] = values, reasons
    schema = {
        "date": pl.Date,
        **{c: pl.Float64 if c.startswith("_mkt") else pl.String for c in list(out)[1:]},
    }
    return pl.DataFrame(out, schema=schema)


def _time_series(
    history: pl.DataFrame, wanted: list[date], market: Market, names: Sequence[str], keep: Iterable[str] = ()
) -> pl.DataFrame:
    """The time-series factors ``names`` (of ``_TS_FACTORS``) and their reasons for every name
    on each day of ``wanted``, with the history's ``keep`` columns, sorted by date and symbol."""
    n = TS_SESSIONS
    rows, index = rows_by_name(history, wanted, ["fee_bps", "utilization_pct", *keep], LOOKBACK)
    rows = _with_z(rows.with_columns(ln_fee=pl.col("fee_bps").log()), ["ln_fee", "utilization_pct"], n)
    # ln fee needs a positive fee on every session (a 0 fee is valid in the feed, but has no log)
    full = (
        _full_window(n)
        & pl.all_horizontal(_back("fee_bps", k) > 0 for k in range(n))
        & pl.all_horizontal(_back("utilization_pct", k).is_not_null() for k in range(n))
    ).fill_null(False)
    rows = rows.with_columns(_full=full).filter(pl.col("date").is_in(wanted))
    terms = _market_terms(market, index, wanted, (_TS_FACTORS[name] for name in names))
    rows = rows.join(terms, on="date", how="left", maintain_order="left")
    # by date and symbol (an integer key), flagged sorted by date: see ``factors.sorted_by_date``
    rows = rows.sort(pl.col("s") * pl.col("_names") + pl.col("_name")).set_sorted("date")
    fee_z = pl.col("_z_ln_fee")
    out = []
    for name in names:
        role = _TS_FACTORS[name]
        lending_z = fee_z if name == "borrow_cds_basis" else (fee_z + pl.col("_z_utilization_pct")) / 2
        own = (
            pl.when(~pl.col("_full"))
            .then(pl.lit(f"lending data missing, or a fee of 0, on some of the {n} sessions"))
            .when(lending_z.is_null())
            .then(pl.lit(f"fee or utilisation constant over the {n} sessions"))
        )
        why = pl.coalesce(pl.col(_why("short")), pl.col(_why(f"mkt_{role}")), own)
        out += [
            pl.when(why.is_null()).then(lending_z - pl.col(f"_mkt_{role}")).alias(name),
            why.alias(_why(name)),
        ]
    return rows.select("date", "symbol", *keep, *out)


def _day_files(
    inputs: Mapping[date, Input], wanted: list[date], delivery: Delivery, columns: list[str]
) -> tuple[pl.DataFrame, dict[date, int], dict[date, str]]:
    """The frames of ``inputs`` for the days of ``wanted`` in one frame (``_file``, ``symbol``,
    ``columns``), each frame once however many days it serves (an ESG file serves a quarter);
    the frame serving each day (its rows are relabelled with the as-of day by ``_join_files``,
    not by the file's own date); and the reason per day without a frame."""
    files: dict[int, tuple[int, pl.DataFrame]] = {}
    which: dict[date, int] = {}
    reasons: dict[date, str] = {}
    for day in wanted:
        given = inputs.get(day, f"no {delivery.name} input for {day}")
        if isinstance(given, str):
            reasons[day] = given
        else:
            which[day] = files.setdefault(id(given), (len(files), given))[0]
    frames = [frame for _, frame in files.values()]
    names = ["symbol", *columns]
    if not frames:
        return (
            pl.DataFrame(schema={"_file": pl.Int64, **{c: delivery.schema[c] for c in names}}),
            which,
            reasons,
        )
    if all(frame.schema == frames[0].schema for frame in frames):  # one select: ~50 us a frame saved
        stacked = pl.concat(frames, rechunk=False).select(names)
    else:
        stacked = pl.concat([frame.select(names) for frame in frames], how="vertical_relaxed")
    number = np.repeat(np.arange(len(frames), dtype=np.int64), [frame.height for frame in frames])
    return stacked.with_columns(_file=pl.Series(number)), which, reasons


def _join_files(rows: pl.DataFrame, files: pl.DataFrame, which: Mapping[date, int]) -> pl.DataFrame:
    """``rows`` (by date and symbol) left-joined with the rows of the frame serving each date."""
    rows = rows.with_columns(_file=_day_value(which, pl.Int64))
    joined = rows.join(files, on=["_file", "symbol"], how="left", maintain_order="left")
    return joined.drop("_file").set_sorted("date")


def _etf_flow(rows: pl.DataFrame, etf_shares: Mapping[date, Input], wanted: list[date]) -> pl.DataFrame:
    """Adds ``etf_flow_pressure`` and its reason (``rows``: ``on_loan_qty``, by date and symbol)."""
    columns = ["shares_outstanding", "shares_outstanding_change"]
    files, which, missing = _day_files(etf_shares, wanted, ETF_SHARES, columns)
    before = pl.col("shares_outstanding") - pl.col("shares_outstanding_change")
    valid = (pl.col("shares_outstanding") > 0) & (before > 0)
    raw = pl.when(valid).then(
        pl.col("on_loan_qty") / pl.col("shares_outstanding") - pl.col("on_loan_qty") / before
    )
    reason = (
        pl.when(pl.col("shares_outstanding").is_null())
        .then(pl.lit("not in the ETF shares-outstanding file (not an ETF)"))
        .when(~valid)
        .then(pl.lit("shares outstanding before or after the flow not positive"))
        .otherwise(pl.lit("no on-loan quantity or too few ETFs for a z-score"))
    )
    scored = _join_files(rows, files, which).with_columns(etf_flow_pressure=zscore(raw).over("date"))
    why = pl.coalesce(
        _day_value(missing, pl.String), pl.when(pl.col("etf_flow_pressure").is_null()).then(reason)
    )
    return scored.with_columns(why.alias(_why("etf_flow_pressure"))).drop(columns)


def _macro_stress(rows: pl.DataFrame, market: Market, wanted: list[date]) -> pl.DataFrame:
    """Adds ``macro_stress`` and its reason (``rows``: ``utilization_pct``, by date and symbol)."""
    stress: dict[date, float] = {}
    missing: dict[date, str] = {}
    if "stress" in market.missing:
        missing = dict.fromkeys(wanted, market.missing["stress"])
    else:
        published = dict(
            market.frame.filter(pl.col("date").is_in(wanted)).select("date", "stress").iter_rows()
        )
        series_id = market.series_ids["stress"]
        for day in wanted:
            if published.get(day) is None:
                missing[day] = f"{series_id} has no value published within {STALE_AFTER_DAYS} days of {day}"
            else:
                stress[day] = published[day]
    value = zscore(pl.col("utilization_pct")).over("date") * _day_value(stress, pl.Float64)
    why = pl.coalesce(
        _day_value(missing, pl.String),
        pl.when(pl.col("macro_stress").is_null()).then(pl.lit("no utilisation z-score")),
    )
    scored = rows.set_sorted("date").with_columns(macro_stress=value)
    return scored.with_columns(why.alias(_why("macro_stress")))


def _esg_gauge(rows: pl.DataFrame, esg: Mapping[date, Input], wanted: list[date]) -> pl.DataFrame:
    """Adds ``esg_constraint`` and its reason (``rows``: ``lender_count``, by date and symbol)."""
    files, which, missing = _day_files(esg, wanted, ESG_SCORES, ["esg_score"])
    gauge = (
        zscore(-pl.col("esg_score")).over("date")
        + zscore(-(pl.col("lender_count").cast(pl.Float64) + 1).log()).over("date")
    ) / 2
    reason = (
        pl.when(pl.col("esg_score").is_null())
        .then(pl.lit("no ESG score for the name"))
        .otherwise(pl.lit("no lender count"))
    )
    scored = _join_files(rows, files, which).with_columns(esg_constraint=gauge)
    why = pl.coalesce(
        _day_value(missing, pl.String), pl.when(pl.col("esg_constraint").is_null()).then(reason)
    )
    return scored.with_columns(why.alias(_why("esg_constraint"))).drop("esg_score")


def _velocity(rows: pl.DataFrame, mentions: pl.DataFrame, days: list[date]) -> tuple[pl.Series, list[date]]:
    """The velocity ``ln(1 + m_t) - mean(ln(1 + m_s), s = t-5 .. t-1)`` of each row of ``rows``
    dated one of ``days`` with ``BUZZ_SESSIONS`` + 1 dates of ``mentions`` ending at it (null on
    the other rows); and the days that have not. The mention dates get an index ``s``; on a
    dense grid of the names by those dates, name by name (a name absent from a date's rows had
    0 mentions), the earlier levels are shifted terms added in a fixed order."""
    n = BUZZ_SESSIONS + 1
    dates = mentions.filter(pl.col("date") <= days[-1])["date"].unique().sort()
    at = dates.search_sorted(pl.Series(days, dtype=pl.Date)).to_list()
    served = {d: i for d, i in zip(days, at, strict=True) if i < dates.len() and dates[i] == d and i >= n - 1}
    short = [d for d in days if d not in served]
    if not served:
        return pl.Series("_velocity", [None] * rows.height, pl.Float64), short
    first = min(served.values()) - (n - 1)
    window = dates[first : max(served.values()) + 1]
    width = window.len()
    names = rows.filter(pl.col("date").is_in(list(served)))["symbol"].unique().sort()
    name = pl.col("symbol").replace_strict(names, pl.int_range(names.len(), eager=True), default=None)
    session = pl.col("date").replace_strict(window, pl.int_range(width, eager=True), default=None)
    # one chunk (a concat of files has one a file): the lookups below run 7x faster
    in_window = mentions.filter(pl.col("date").is_between(window[0], window[-1])).rechunk()
    cells = in_window.select(
        (name * width + session).alias("cell"),
        level=(pl.col("mentions").fill_null(0).cast(pl.Float64) + 1).log(),
    ).drop_nulls("cell")
    level = pl.zeros(names.len() * width, pl.Float64, eager=True).scatter(cells["cell"], cells["level"])
    grid = pl.DataFrame({"level": level}).with_columns(
        symbol=pl.int_range(pl.len()) // width, s=pl.int_range(pl.len()) % width
    )
    before = _total(_back("level", k) for k in range(n - 1, 0, -1)) / (n - 1)  # t-5 .. t-1
    velocity = grid.select(pl.when(_full_window(n)).then(pl.col("level") - before)).to_series()
    on_day = pl.col("date").replace_strict(
        pl.Series(list(served), dtype=pl.Date), [i - first for i in served.values()], default=None
    )
    cell = rows.select(name * width + on_day).to_series()
    return velocity.gather(cell).alias("_velocity"), short


def _crowd_buzz(
    rows: pl.DataFrame, mentions: Mapping[date, Mentions | str], wanted: list[date]
) -> pl.DataFrame:
    """Adds ``crowd_buzz`` and its reason (``rows``: by date and symbol). Per day, the last
    ``BUZZ_SESSIONS`` + 1 dates of its mention rows up to the day, which must end at the day;
    days whose ``Mentions`` share a rows frame are computed on one grid."""
    missing: dict[date, str] = {}
    groups: dict[int, tuple[pl.DataFrame, list[date]]] = {}
    for day in wanted:
        given = mentions.get(day, f"no {SOCIAL_MENTIONS.name} input for {day}")
        if isinstance(given, str):
            missing[day] = given
        elif given.problems:
            missing[day] = "; ".join(given.problems)
        else:
            groups.setdefault(id(given.rows), (given.rows, []))[1].append(day)
    velocity = pl.lit(None, pl.Float64)
    for frame, days in groups.values():
        part, short = _velocity(rows, frame, days)
        velocity = pl.coalesce(velocity, pl.lit(part))
        missing |= {d: f"fewer than {BUZZ_SESSIONS + 1} social-mention files to {d}" for d in short}
    scored = (
        rows.with_columns(_velocity=velocity)
        .set_sorted("date")
        .with_columns(crowd_buzz=zscore(pl.col("_velocity")).over("date"))
    )
    why = pl.coalesce(
        _day_value(missing, pl.String),
        pl.when(pl.col("crowd_buzz").is_null()).then(pl.lit("too few names for a z-score")),
    )
    return scored.with_columns(why.alias(_why("crowd_buzz"))).drop("_velocity")


def _snapshot_rows(snapshot: pl.DataFrame, day: date, columns: Iterable[str]) -> pl.DataFrame:
    """A lone snapshot as the range's rows of one day."""
    return sorted_by_date(snapshot.select("symbol", *columns).with_columns(date=pl.lit(day, pl.Date)))


def _one(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """A factor of one day as the per-factor functions return it: ``symbol``, ``name``, ``why``."""
    return frame.select("symbol", name, pl.col(_why(name)).alias("why"))


# ---- factors ------------------------------------------------------------------------------
def extended_factors_range(inputs: ExtendedRangeInputs, days: Sequence[date]) -> pl.DataFrame:
    """All six extended factors for every day of ``days`` in one pass: ``date``, ``symbol``, the
    ``EXTENDED_COLUMNS`` and ``null_reasons``; one row per symbol on each day, sorted by date
    and symbol. A day's rows equal ``extended_factors`` of it (reading only rows up to it)."""
    wanted = sorted(set(days))
    if not wanted:
        schema = {"date": pl.Date, "symbol": pl.String, **dict.fromkeys(EXTENDED_COLUMNS, pl.Float64)}
        return pl.DataFrame(schema=schema | {"null_reasons": pl.String})
    keep = ["utilization_pct", "on_loan_qty", "lender_count"]
    rows = _time_series(inputs.history, wanted, inputs.market, list(_TS_FACTORS), keep=keep)
    rows = _etf_flow(rows, inputs.etf_shares, wanted)
    rows = _macro_stress(rows, inputs.market, wanted)
    rows = _esg_gauge(rows, inputs.esg, wanted)
    rows = _crowd_buzz(rows, inputs.mentions, wanted)
    reasons = [pl.format(f"{name}: {{}}", pl.col(_why(name))) for name in EXTENDED_COLUMNS]
    any_reason = pl.any_horizontal(pl.col(_why(name)).is_not_null() for name in EXTENDED_COLUMNS)
    null_reasons = pl.when(any_reason).then(pl.concat_str(reasons, separator="; ", ignore_nulls=True))
    return rows.select("date", "symbol", *EXTENDED_COLUMNS, null_reasons.alias("null_reasons"))


def extended_factors(inputs: ExtendedInputs, day: date) -> pl.DataFrame:
    """All six extended factors for ``day``: ``date``, ``symbol``, the ``EXTENDED_COLUMNS`` and
    ``null_reasons`` (``factor: reason`` for each null factor, ``; ``-joined, null when none)."""
    one = ExtendedRangeInputs(
        inputs.history,
        inputs.market,
        {day: inputs.etf_shares},
        {day: inputs.esg},
        {day: inputs.mentions},
    )
    return extended_factors_range(one, [day])


def borrow_cds_basis(history: pl.DataFrame, day: date, market: Market) -> pl.DataFrame:
    """``z_ts(ln fee) - z_ts(ln hy_oas)`` over the 20 sessions ending at ``day``: the name's
    borrow cost against its own history, net of the credit market's move (``symbol``,
    ``borrow_cds_basis``, ``why``)."""
    return _one(_time_series(history, [day], market, ["borrow_cds_basis"]), "borrow_cds_basis")


def options_skew_divergence(history: pl.DataFrame, day: date, market: Market) -> pl.DataFrame:
    """``(z_ts(ln fee) + z_ts(utilisation)) / 2 - z_ts(skew)`` over the 20 sessions ending at
    ``day``: lending tightness against the price of tail hedges (``symbol``,
    ``options_skew_div``, ``why``)."""
    return _one(_time_series(history, [day], market, ["options_skew_div"]), "options_skew_div")


def etf_flow_pressure(snapshot: pl.DataFrame, etf_shares: Input) -> pl.DataFrame:
    """``z_cs(on_loan / so - on_loan / (so - change))``: how much the day's creations (change
    > 0) or redemptions (< 0) moved the share of the ETF's shares on loan; null for names not
    in the file (not ETFs) and where shares outstanding before or after is not positive."""
    rows = _snapshot_rows(snapshot, _ANY_DAY, ["on_loan_qty"])
    return _one(_etf_flow(rows, {_ANY_DAY: etf_shares}, [_ANY_DAY]), "etf_flow_pressure")


def macro_liquidity_stress(snapshot: pl.DataFrame, day: date, market: Market) -> pl.DataFrame:
    """``z_cs(utilisation) * stress``: tight names score high when the system is stressed
    (stress > 0) and low when it is calm (stress < 0)."""
    rows = _snapshot_rows(snapshot, day, ["utilization_pct"])
    return _one(_macro_stress(rows, market, [day]), "macro_stress")


def esg_constraint_gauge(snapshot: pl.DataFrame, esg: Input) -> pl.DataFrame:
    """``(z_cs(-esg_score) + z_cs(-ln(1 + lender_count))) / 2``: supply limited by ESG-screened
    lenders (a low score and few lenders); null for names without a score."""
    rows = _snapshot_rows(snapshot, _ANY_DAY, ["lender_count"])
    return _one(_esg_gauge(rows, {_ANY_DAY: esg}, [_ANY_DAY]), "esg_constraint")


def crowd_buzz_pulse(snapshot: pl.DataFrame, day: date, mentions: Mentions | str) -> pl.DataFrame:
    """``z_cs(ln(1 + m_t) - mean(ln(1 + m_s), s = t-5 .. t-1))`` over the day's names; a name
    absent from a day's file had no mentions that day. Null for every name when any of the six
    files is missing."""
    rows = _snapshot_rows(snapshot, day, [])
    return _one(_crowd_buzz(rows, {day: mentions}, [day]), "crowd_buzz")
