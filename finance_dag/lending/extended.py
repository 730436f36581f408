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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

import polars as pl

from finance_dag.core.settings import LENDING_MACRO_SERIES
from finance_dag.lending.factors import rows_as_of, session_panel, zscore
from finance_dag.lending.feed import Delivery

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

ETF_SHARES = Delivery(
    name="ETF shares outstanding",
    prefix="etf_shares_",
    columns={
        "date": "date",
        "symbol": "symbol",
        "shares_outstanding": "shares_outstanding",
        "shares_outstanding_change": "shares_outstanding_change",
    },
    schema=pl.Schema(
        {
            "date": pl.Date,
            "symbol": pl.String,
            "shares_outstanding": pl.Float64,
            "shares_outstanding_change": pl.Float64,
        }
    ),
    not_null=("date", "symbol", "shares_outstanding", "shares_outstanding_change"),
    non_negative=("shares_outstanding",),
)
ESG_SCORES = Delivery(
    name="ESG scores",
    prefix="esg_scores_",
    columns={"date": "date", "symbol": "symbol", "esg_score": "esg_score"},
    schema=pl.Schema({"date": pl.Date, "symbol": pl.String, "esg_score": pl.Float64}),
    not_null=("date", "symbol", "esg_score"),
    non_negative=("esg_score",),
    maxima={"esg_score": 10.0},
)
SOCIAL_MENTIONS = Delivery(
    name="social mentions",
    prefix="social_mentions_",
    columns={"date": "date", "symbol": "symbol", "mentions": "mentions"},
    schema=pl.Schema({"date": pl.Date, "symbol": pl.String, "mentions": pl.Int64}),
    not_null=("date", "symbol", "mentions"),
    non_negative=("mentions",),
)
SKEW_FILE = Delivery(
    name="CBOE SKEW history",
    prefix="cboe_skew",
    columns={"date": "date", "skew": "skew"},
    schema=pl.Schema({"date": pl.Date, "skew": pl.Float64}),
    not_null=("date", "skew"),
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
def _z_last(x: pl.Expr) -> pl.Expr:
    """Time-series z of the last value of ``x`` over its window (ddof 1); null if std is 0."""
    std = x.std(ddof=1)
    return pl.when(std > 0).then((x.last() - x.mean()) / std)


def _market_z(market: Market, window: list[date], role: str, log: bool) -> float | str:
    """z_ts of a market series over ``window``, or why it cannot be computed."""
    if role in market.missing:
        return market.missing[role]
    series_id = market.series_ids[role]
    values = pl.DataFrame({"date": window}).join(market.frame, on="date", how="left")[role]
    absent = values.null_count()
    if absent:
        return f"{series_id} not published for {absent} of the {len(window)} sessions to {window[-1]}"
    series = values.log() if log else values
    std = series.std()
    if not std:
        return f"{series_id} constant over the {len(window)} sessions to {window[-1]}"
    return float((series[-1] - series.mean()) / std)


def _ts_divergence(
    history: pl.DataFrame, day: date, market: Market, name: str, role: str, log: bool
) -> pl.DataFrame:
    """``lending_z - z_ts(market series)`` per name, ``lending_z`` being the name's 20-session
    z of ln fee (basis) or the mean of it and utilisation's (skew divergence)."""
    past, sessions = rows_as_of(history, day, ["fee_bps", "utilization_pct"])
    panel = session_panel(past, sessions, TS_SESSIONS, "fee_bps")
    names = past.filter(pl.col("date") == day).select("symbol")
    if panel is None:
        return _missing(names, name, f"fewer than {TS_SESSIONS} lending sessions to {day}")
    window = sessions.tail(TS_SESSIONS).to_list()
    market_z = _market_z(market, window, role, log)
    if isinstance(market_z, str):
        return _missing(names, name, market_z)
    fee_z = _z_last(pl.col("fee_bps").log())
    lending_z = fee_z if name == "borrow_cds_basis" else (fee_z + _z_last(pl.col("utilization_pct"))) / 2
    # ln fee needs a positive fee on every session (a 0 fee is valid in the feed, but has no log)
    full = (pl.col("fee_bps") > 0).fill_null(False).all() & pl.col("utilization_pct").is_not_null().all()
    stats = panel.group_by("symbol").agg(full=full, lending_z=lending_z)
    return stats.select(
        "symbol",
        pl.when(pl.col("full")).then(pl.col("lending_z") - market_z).alias(name),
        pl.when(~pl.col("full"))
        .then(pl.lit(f"lending data missing, or a fee of 0, on some of the {TS_SESSIONS} sessions"))
        .when(pl.col("lending_z").is_null())
        .then(pl.lit(f"fee or utilisation constant over the {TS_SESSIONS} sessions"))
        .alias("why"),
    )


def _missing(names: pl.DataFrame, name: str, reason: str) -> pl.DataFrame:
    return names.with_columns(pl.lit(None, pl.Float64).alias(name), why=pl.lit(reason))


def _why_null(name: str, reason: str) -> pl.Expr:
    return pl.when(pl.col(name).is_null()).then(pl.lit(reason)).alias("why")


# ---- factors ------------------------------------------------------------------------------
def borrow_cds_basis(history: pl.DataFrame, day: date, market: Market) -> pl.DataFrame:
    """``z_ts(ln fee) - z_ts(ln hy_oas)`` over the 20 sessions ending at ``day``: the name's
    borrow cost against its own history, net of the credit market's move (``symbol``,
    ``borrow_cds_basis``, ``why``)."""
    return _ts_divergence(history, day, market, "borrow_cds_basis", "hy_oas", True)


def options_skew_divergence(history: pl.DataFrame, day: date, market: Market) -> pl.DataFrame:
    """``(z_ts(ln fee) + z_ts(utilisation)) / 2 - z_ts(skew)`` over the 20 sessions ending at
    ``day``: lending tightness against the price of tail hedges (``symbol``,
    ``options_skew_div``, ``why``)."""
    return _ts_divergence(history, day, market, "options_skew_div", "skew", False)


def etf_flow_pressure(snapshot: pl.DataFrame, etf_shares: Input) -> pl.DataFrame:
    """``z_cs(on_loan / so - on_loan / (so - change))``: how much the day's creations (change
    > 0) or redemptions (< 0) moved the share of the ETF's shares on loan; null for names not
    in the file (not ETFs) and where shares outstanding before or after is not positive."""
    names = snapshot.select("symbol", "on_loan_qty")
    if isinstance(etf_shares, str):
        return _missing(names.select("symbol"), "etf_flow_pressure", etf_shares)
    rows = names.join(
        etf_shares.select("symbol", "shares_outstanding", "shares_outstanding_change"),
        on="symbol",
        how="left",
    )
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
    scored = rows.sort("symbol").with_columns(etf_flow_pressure=zscore(raw))
    return scored.select(
        "symbol",
        "etf_flow_pressure",
        pl.when(pl.col("etf_flow_pressure").is_null()).then(reason).alias("why"),
    )


def macro_liquidity_stress(snapshot: pl.DataFrame, day: date, market: Market) -> pl.DataFrame:
    """``z_cs(utilisation) * stress``: tight names score high when the system is stressed
    (stress > 0) and low when it is calm (stress < 0)."""
    names = snapshot.select("symbol", "utilization_pct").sort("symbol")
    if "stress" in market.missing:
        return _missing(names.select("symbol"), "macro_stress", market.missing["stress"])
    stress = market.frame.filter(pl.col("date") == day)["stress"]
    if stress.is_empty() or stress[0] is None:
        series_id = market.series_ids["stress"]
        reason = f"{series_id} has no value published within {STALE_AFTER_DAYS} days of {day}"
        return _missing(names.select("symbol"), "macro_stress", reason)
    scored = names.with_columns(macro_stress=zscore(pl.col("utilization_pct")) * stress[0])
    return scored.select("symbol", "macro_stress", _why_null("macro_stress", "no utilisation z-score"))


def esg_constraint_gauge(snapshot: pl.DataFrame, esg: Input) -> pl.DataFrame:
    """``(z_cs(-esg_score) + z_cs(-ln(1 + lender_count))) / 2``: supply limited by ESG-screened
    lenders (a low score and few lenders); null for names without a score."""
    names = snapshot.select("symbol", "lender_count")
    if isinstance(esg, str):
        return _missing(names.select("symbol"), "esg_constraint", esg)
    rows = names.join(esg.select("symbol", "esg_score"), on="symbol", how="left").sort("symbol")
    gauge = (zscore(-pl.col("esg_score")) + zscore(-(pl.col("lender_count").cast(pl.Float64) + 1).log())) / 2
    reason = (
        pl.when(pl.col("esg_score").is_null())
        .then(pl.lit("no ESG score for the name"))
        .otherwise(pl.lit("no lender count"))
    )
    scored = rows.with_columns(esg_constraint=gauge)
    return scored.select(
        "symbol", "esg_constraint", pl.when(pl.col("esg_constraint").is_null()).then(reason).alias("why")
    )


def crowd_buzz_pulse(snapshot: pl.DataFrame, day: date, mentions: Mentions | str) -> pl.DataFrame:
    """``z_cs(ln(1 + m_t) - mean(ln(1 + m_s), s = t-5 .. t-1))`` over the day's names; a name
    absent from a day's file had no mentions that day. Null for every name when any of the six
    files is missing."""
    names = snapshot.select("symbol").sort("symbol")
    if isinstance(mentions, str):
        return _missing(names, "crowd_buzz", mentions)
    if mentions.problems:
        return _missing(names, "crowd_buzz", "; ".join(mentions.problems))
    rows = mentions.rows.filter(pl.col("date") <= day)
    sessions = rows["date"].unique().sort().tail(BUZZ_SESSIONS + 1).to_list()
    if len(sessions) < BUZZ_SESSIONS + 1 or sessions[-1] != day:
        return _missing(names, "crowd_buzz", f"fewer than {BUZZ_SESSIONS + 1} social-mention files to {day}")
    grid = names.join(pl.DataFrame({"date": sessions}), how="cross")
    logs = grid.join(rows, on=["date", "symbol"], how="left").with_columns(
        level=(pl.col("mentions").fill_null(0).cast(pl.Float64) + 1).log()
    )
    today = pl.col("level").filter(pl.col("date") == day).first()
    before = pl.col("level").filter(pl.col("date") < day).mean()
    velocity = logs.group_by("symbol").agg(velocity=today - before).sort("symbol")
    scored = velocity.with_columns(crowd_buzz=zscore(pl.col("velocity")))
    return scored.select("symbol", "crowd_buzz", _why_null("crowd_buzz", "too few names for a z-score"))


def extended_factors(inputs: ExtendedInputs, day: date) -> pl.DataFrame:
    """All six extended factors for ``day``: ``date``, ``symbol``, the ``EXTENDED_COLUMNS`` and
    ``null_reasons`` (``factor: reason`` for each null factor, ``; ``-joined, null when none)."""
    snapshot = inputs.history.filter(pl.col("date") == day)
    if snapshot.is_empty():
        raise ValueError(f"lending history has no rows for {day}")
    frames = [
        borrow_cds_basis(inputs.history, day, inputs.market),
        options_skew_divergence(inputs.history, day, inputs.market),
        etf_flow_pressure(snapshot, inputs.etf_shares),
        macro_liquidity_stress(snapshot, day, inputs.market),
        esg_constraint_gauge(snapshot, inputs.esg),
        crowd_buzz_pulse(snapshot, day, inputs.mentions),
    ]
    out = snapshot.select("date", "symbol").sort("symbol")
    for name, frame in zip(EXTENDED_COLUMNS, frames, strict=True):
        out = out.join(frame.rename({"why": f"_why_{name}"}), on="symbol", how="left")
    reasons = pl.concat_list(
        pl.when(pl.col(f"_why_{n}").is_not_null()).then(pl.format(f"{n}: {{}}", pl.col(f"_why_{n}")))
        for n in EXTENDED_COLUMNS
    ).list.drop_nulls()
    return out.with_columns(
        null_reasons=pl.when(reasons.list.len() > 0).then(reasons.list.join("; "))
    ).select("date", "symbol", *EXTENDED_COLUMNS, "null_reasons")
