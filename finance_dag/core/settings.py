"""Settings read once, validated, and passed down to everything the code location builds.

``load_settings()`` reads the ``FINANCE_DAG_*`` variables once (``definitions.py`` calls it);
every factory below it (partitions, universes, pools, thresholds, resources) takes the
resulting ``Settings`` value, so a test or a notebook pins its own settings and nothing reads
the environment at import. Only plain values live here: secrets are read by resources through
``dg.EnvVar`` so their values never show in the UI.

Each domain has its own universe and history window (``DomainSettings``); the market-data
domain reads ``FINANCE_DAG_UNIVERSE`` / ``FINANCE_DAG_START_DATE`` / ``FINANCE_DAG_END_DATE``.
A bad value fails at load with a message naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

DEFAULT_STORAGE = "./data"
DEFAULT_START_DATE = "2024-01-02"
DEFAULT_COVERAGE_THRESHOLD = 0.85
FIRST_SESSION = date(2010, 1, 4)  # the calendar's first session (finance_dag.core.calendar)
ENVIRONMENTS = ("sim", "prod")
LENDING_SOURCES = ("sim", "inbox", "sql")
DROP_SOURCES = ("sim", "inbox")
MACRO_SOURCES = ("sim", "fred")
SKEW_SOURCES = ("sim", "yahoo", "file")
ETF_SOURCES = ("sim", "files")
BROKERS = ("simulated", "alpaca", "ib")
DEFAULT_ETF_START_DATE = "2019-11-01"
DEFAULT_RISK_START_DATE = "2023-11-01"
RISK_SOURCES = ("sim", "vendors")
EXECUTORS = ("multiprocess", "in_process", "celery")
# Alerts (docs/operations.md): the webhook URL is a secret, read by the alert_webhook resource
# through dg.EnvVar; settings only check it and remember whether it is set.
ALERT_WEBHOOK_VAR = "FINANCE_DAG_ALERT_WEBHOOK_URL"
DEFAULT_ALERT_TIMEOUT = 10.0
# FRED series of the extended lending factors, by role; FINANCE_DAG_LENDING_MACRO_SERIES overrides.
LENDING_MACRO_SERIES: dict[str, str] = {"hy_oas": "BAMLH0A0HYM2", "vix": "VIXCLS", "stress": "STLFSI4"}


class SettingError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


@dataclass(frozen=True)
class DomainSettings:
    """One domain's universe and history window (``end_date`` None: follows the calendar)."""

    universe: tuple[str, ...]
    start_date: date
    end_date: date | None = None


@dataclass(frozen=True)
class Settings:
    storage: str
    environment: str  # "sim" (simulated market, no keys) or "prod" (real vendors)
    bar_vendors: tuple[str, ...]  # primary first, then fallbacks; empty: the registry's default
    coverage_threshold: float
    market_data: DomainSettings
    lending: DomainSettings
    lending_source: str  # "sim" (files dropped by the simulated feed), "inbox" or "sql"
    lending_inbox: str  # folder or s3:// prefix where lending files land
    lending_sql_table: str  # table read when lending_source is "sql" (URL: env LENDING_SQL_URI)
    # Extended-factor inputs (docs/lending.md): file drops, FRED series, CBOE SKEW.
    lending_drops_source: str = "sim"  # "sim" (the simulated vendors drop files) or "inbox"
    lending_drops_inbox: str = "./data/_inbox"  # one folder per drop: etf_shares/, esg_scores/, ...
    lending_macro_source: str = "sim"  # "sim" or "fred"
    lending_macro_series: tuple[tuple[str, str], ...] = tuple(LENDING_MACRO_SERIES.items())
    lending_skew_source: str = "sim"  # "sim", "yahoo" (^SKEW) or "file"
    lending_skew_file: str = ""  # CSV or parquet with date, skew when lending_skew_source is "file"
    # ETF domain (docs/etf.md): history window, where the directory and category files come
    # from, the daily-price vendor chain and the broker.
    etf: DomainSettings = DomainSettings((), date.fromisoformat(DEFAULT_ETF_START_DATE))
    etf_source: str = "sim"  # "sim" (the simulated market drops the files) or "files"
    etf_inbox: str = "./data/_inbox/etf"  # nasdaqlisted.txt, otherlisted.txt, etf_categories.csv
    etf_price_vendors: tuple[str, ...] = ()  # primary first; empty: the registry's default chain
    broker: str = "simulated"  # "simulated", "alpaca" or "ib"
    # Risk domain (docs/risk.md): window and universe (empty: the simulated equity universe),
    # where stock prices and fundamentals come from, the factor covariance half-life.
    risk: DomainSettings = DomainSettings((), date.fromisoformat(DEFAULT_RISK_START_DATE))
    risk_source: str = "sim"  # "sim" (simulated equities) or "vendors" (daily chain + fundamentals)
    risk_half_life: float = 90.0  # sessions
    # How a run executes its steps: "multiprocess" (Dagster's default, one process per step on this
    # machine), "in_process", or "celery" (steps on Celery workers: the production profile).
    executor: str = "multiprocess"
    # Alerts (docs/operations.md, "Alerts"): whether FINANCE_DAG_ALERT_WEBHOOK_URL is set (its value
    # never lives here) and the seconds one webhook POST may take.
    alert_webhook: bool = False
    alert_timeout: float = DEFAULT_ALERT_TIMEOUT


def _date(env: Mapping[str, str], name: str, default: str | None, today: date) -> date | None:
    raw = env.get(name, default)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise SettingError(f"{name}={raw!r} is not an ISO date (YYYY-MM-DD)") from exc
    if value < FIRST_SESSION:
        raise SettingError(f"{name}={raw!r} is before the calendar's first session {FIRST_SESSION}")
    if value > today:
        raise SettingError(f"{name}={raw!r} is in the future (today is {today} in New York)")
    return value


def domain_settings(
    env: Mapping[str, str],
    prefix: str,
    default_universe: str,
    default_start: str,
    today: date,
) -> DomainSettings:
    """``{prefix}UNIVERSE``, ``{prefix}START_DATE`` and ``{prefix}END_DATE`` of one domain
    (``default_universe`` empty: the domain finds its universe elsewhere, e.g. ETF directories)."""
    from finance_dag.core.universe import resolve_universe

    universe_var = f"{prefix}UNIVERSE"
    raw_universe = env.get(universe_var, default_universe)
    universe = resolve_universe(raw_universe, universe_var) if raw_universe else ()
    start = _date(env, f"{prefix}START_DATE", default_start, today)
    end = _date(env, f"{prefix}END_DATE", None, today)
    assert start is not None
    if end is not None and end < start:
        raise SettingError(f"{prefix}END_DATE={end} is before {prefix}START_DATE={start}")
    return DomainSettings(universe, start, end)


def load_settings(env: Mapping[str, str] | None = None, today: date | None = None) -> Settings:
    """Read and validate ``FINANCE_DAG_*`` variables, naming the variable on a bad value."""
    env = dict(os.environ if env is None else env)
    today = today or datetime.now(ZoneInfo("America/New_York")).date()
    storage = env.get("FINANCE_DAG_STORAGE", DEFAULT_STORAGE).strip()
    if not storage or storage in ("s3://", "s3:"):
        raise SettingError(
            "FINANCE_DAG_STORAGE is empty: set a folder (e.g. ./data) or s3://bucket/prefix, "
            "or unset it for the default ./data"
        )
    threshold_raw = env.get("FINANCE_DAG_COVERAGE_THRESHOLD", str(DEFAULT_COVERAGE_THRESHOLD))
    try:
        threshold = float(threshold_raw)
    except ValueError:
        threshold = -1.0
    if not 0.0 <= threshold <= 1.0:
        raise SettingError(
            f"FINANCE_DAG_COVERAGE_THRESHOLD={threshold_raw!r} must be a fraction between 0 and 1"
        )
    environment = env.get("FINANCE_DAG_ENV", "sim")
    if environment not in ENVIRONMENTS:
        raise SettingError(f"FINANCE_DAG_ENV={environment!r} must be 'sim' or 'prod'")
    vendors = _names(env, "FINANCE_DAG_BAR_VENDORS")

    def sim_or(production: str) -> str:
        return "sim" if environment == "sim" else production

    skew_source = _choice(env, "FINANCE_DAG_LENDING_SKEW_SOURCE", sim_or("yahoo"), SKEW_SOURCES)
    skew_file = env.get("FINANCE_DAG_LENDING_SKEW_FILE", "").strip()
    if skew_source == "file" and not skew_file:
        raise SettingError(
            "FINANCE_DAG_LENDING_SKEW_SOURCE=file needs FINANCE_DAG_LENDING_SKEW_FILE (a CSV or parquet "
            "file with columns date, skew)"
        )
    return Settings(
        storage=storage,
        environment=environment,
        bar_vendors=vendors,
        coverage_threshold=threshold,
        market_data=domain_settings(env, "FINANCE_DAG_", "demo", DEFAULT_START_DATE, today),
        lending=domain_settings(env, "FINANCE_DAG_LENDING_", "lending", DEFAULT_START_DATE, today),
        lending_source=_choice(env, "FINANCE_DAG_LENDING_SOURCE", sim_or("inbox"), LENDING_SOURCES),
        lending_inbox=env.get("FINANCE_DAG_LENDING_INBOX", "").strip()
        or f"{storage.rstrip('/')}/_inbox/lending",
        lending_sql_table=env.get("FINANCE_DAG_LENDING_SQL_TABLE", "lending"),
        lending_drops_source=_choice(env, "FINANCE_DAG_LENDING_DROPS_SOURCE", sim_or("inbox"), DROP_SOURCES),
        lending_drops_inbox=env.get("FINANCE_DAG_LENDING_DROPS_INBOX", "").strip()
        or f"{storage.rstrip('/')}/_inbox",
        lending_macro_source=_choice(env, "FINANCE_DAG_LENDING_MACRO_SOURCE", sim_or("fred"), MACRO_SOURCES),
        lending_macro_series=_macro_series(env.get("FINANCE_DAG_LENDING_MACRO_SERIES", "")),
        lending_skew_source=skew_source,
        lending_skew_file=skew_file,
        etf=domain_settings(env, "FINANCE_DAG_ETF_", "", DEFAULT_ETF_START_DATE, today),
        etf_source=_choice(env, "FINANCE_DAG_ETF_SOURCE", sim_or("files"), ETF_SOURCES),
        etf_inbox=env.get("FINANCE_DAG_ETF_INBOX", "").strip() or f"{storage.rstrip('/')}/_inbox/etf",
        etf_price_vendors=_names(env, "FINANCE_DAG_ETF_PRICE_VENDORS"),
        broker=_choice(env, "FINANCE_DAG_BROKER", "simulated" if environment == "sim" else "ib", BROKERS),
        risk=domain_settings(env, "FINANCE_DAG_RISK_", "", DEFAULT_RISK_START_DATE, today),
        risk_source=_choice(env, "FINANCE_DAG_RISK_SOURCE", sim_or("vendors"), RISK_SOURCES),
        risk_half_life=_positive(env, "FINANCE_DAG_RISK_HALF_LIFE", 90.0),
        executor=_choice(env, "FINANCE_DAG_EXECUTOR", "multiprocess", EXECUTORS),
        alert_webhook=_webhook_set(env, ALERT_WEBHOOK_VAR),
        alert_timeout=_positive(env, "FINANCE_DAG_ALERT_TIMEOUT", DEFAULT_ALERT_TIMEOUT),
    )


def _webhook_set(env: Mapping[str, str], name: str) -> bool:
    """Whether the webhook URL ``name`` is set; a set value must be an http(s) URL with a host.
    The message never shows the value: a webhook URL carries its token."""
    raw = env.get(name, "").strip()
    if not raw:
        return False
    try:
        parts = urlsplit(raw)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        usable = False
    if not usable:
        raise SettingError(
            f"{name} must be an http:// or https:// URL with a host (its value is not shown: it may "
            "hold a token); unset it to record alerts in the lake only"
        )
    return True


def _macro_series(raw: str) -> tuple[tuple[str, str], ...]:
    """``hy_oas=BAMLH0A0HYM2,stress=STLFSI4`` over the defaults, as (role, series id) pairs."""
    series = dict(LENDING_MACRO_SERIES)
    for part in filter(None, (p.strip() for p in raw.split(","))):
        role, _, series_id = (x.strip() for x in part.partition("="))
        if role not in series or not series_id:
            raise SettingError(
                f"FINANCE_DAG_LENDING_MACRO_SERIES entry {part!r} must be role=SERIES_ID with role one of "
                f"{', '.join(LENDING_MACRO_SERIES)}"
            )
        series[role] = series_id
    return tuple(series.items())


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise SettingError(f"{name}={raw!r} must be a positive number")
    return value


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of vendor names (empty: the registry's default chain)."""
    raw = env.get(name, "").strip()
    names = tuple(v.strip() for v in raw.split(",")) if raw else ()
    if not all(names):
        raise SettingError(f"{name}={env[name]!r} has an empty vendor name")
    return names


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, default).strip()
    if value not in allowed:
        raise SettingError(f"{name}={value!r} must be one of {', '.join(allowed)}")
    return value
