"""Real vendors and brokers as Dagster resources: Alpaca (data and trading), Alpha Vantage, Yahoo,
FRED and Interactive Brokers.

Credentials are plain string fields meant to be given ``dg.EnvVar("ALPACA_API_KEY")`` etc.,
so the UI shows the variable's name, never its value. A resource whose credential is empty
fails at setup naming the environment variable to set. ``base_url`` points a vendor at
another host (the loopback fakes in tests). Each resource hands out one adapter per resource
instance, so per-run caches (Alpha Vantage months) are shared by every call in a run.
"""

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field, PrivateAttr

from finance_dag.sim.macro import MACRO_SERIES

if TYPE_CHECKING:
    from finance_dag.brokers.alpaca import AlpacaBroker
    from finance_dag.brokers.ib import IbBroker
    from finance_dag.core.http import RateLimiter, RetryPolicy
    from finance_dag.market_data.vendors.alpaca import AlpacaBars
    from finance_dag.market_data.vendors.alpha_vantage import AlphaVantageBars
    from finance_dag.market_data.vendors.alpha_vantage_fundamentals import AlphaVantageFundamentals
    from finance_dag.market_data.vendors.fred import FredMacro
    from finance_dag.market_data.vendors.ib import IbDaily
    from finance_dag.market_data.vendors.yahoo import YahooBars

# The vendor SDKs (alpaca-py, yfinance, alpha_vantage, fredapi) cost about half a second to
# import, so adapters are imported when a resource builds one, not when definitions load.


class VendorResource(dg.ConfigurableResource):
    """Settings every vendor shares: where it lives and how hard to retry."""

    base_url: str | None = Field(default=None, description="Vendor host override, e.g. a loopback fake.")
    timeout_s: float = Field(default=30.0, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=5, description="Attempts per request, first one included.")
    backoff_initial_s: float = Field(default=1.0, description="First retry wait (exponential, jittered).")
    backoff_max_s: float = Field(
        default=60.0, description="Longest retry wait; a longer Retry-After ends the retries."
    )

    _adapter: object = PrivateAttr(default=None)

    def policy(self) -> "RetryPolicy":
        from finance_dag.core.http import RetryPolicy

        return RetryPolicy(
            attempts=self.max_attempts,
            initial_wait=self.backoff_initial_s,
            max_wait=self.backoff_max_s,
            jitter=min(1.0, self.backoff_initial_s),
            timeout=self.timeout_s,
        )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._adapter = self._build()

    def _build(self) -> object:
        raise NotImplementedError

    def _shared(self) -> object:
        if self._adapter is None:  # used outside a run (notebooks, sensors)
            self._adapter = self._build()
        return self._adapter


def require(resource: str, **credentials: str) -> None:
    """Fail naming the environment variable behind every empty credential (values never shown)."""
    missing = [env for env, value in credentials.items() if not value]
    if missing:
        raise ValueError(
            f"{resource} is selected but environment variable(s) {', '.join(missing)} not set "
            "(the resource reads its credentials through dg.EnvVar)"
        )


class AlpacaResource(VendorResource):
    """Alpaca market data (primary minute-bar vendor): raw, UTC, batched multi-symbol pages."""

    api_key: str = Field(default="", description='Give dg.EnvVar("ALPACA_API_KEY").')
    secret_key: str = Field(default="", description='Give dg.EnvVar("ALPACA_SECRET_KEY").')
    feed: str = Field(
        default="sip",
        description=(
            "sip (consolidated volume; the free plan serves SIP older than 15 minutes) or iex (about "
            "2 % of volume). Written into each bar's source (alpaca:sip / alpaca:iex); do not mix "
            "feeds within a day."
        ),
    )
    requests_per_minute: int = Field(default=200, description="Historical-data calls per minute of the plan.")

    def _build(self) -> "AlpacaBars":
        from finance_dag.core.http import shared_limiter
        from finance_dag.market_data.vendors.alpaca import AlpacaBars

        require("AlpacaResource", ALPACA_API_KEY=self.api_key, ALPACA_SECRET_KEY=self.secret_key)
        return AlpacaBars(
            self.api_key,
            self.secret_key,
            feed=self.feed,
            base_url=self.base_url,
            policy=self.policy(),
            limiter=shared_limiter("alpaca", ((self.requests_per_minute, 60.0),)),
        )

    def bars(self) -> "AlpacaBars":
        return self._shared()

    def daily(self) -> "AlpacaBars":
        return self._shared()


class AlphaVantageResource(VendorResource):
    """Alpha Vantage intraday (fallback): one request per symbol-month, throttle notes retried; and
    company overviews (``fundamentals()``) on the same key, limiter and retry policy."""

    api_key: str = Field(default="", description='Give dg.EnvVar("ALPHAVANTAGE_API_KEY").')
    extended_hours: bool = True
    requests_per_minute: int = Field(default=75, description="75 on the cheapest premium plan; 5 free.")
    requests_per_day: int | None = Field(default=None, description="25 on the free plan; none on premium.")
    throttle_wait_s: float = Field(default=60.0, description="Wait after a throttle note before retrying.")
    max_limit_wait_s: float = Field(
        default=300.0,
        description=(
            "Longest wait for the client-side rate limit; a request that would wait longer (e.g. "
            "for the daily quota to roll) fails at once and its symbol-days go to the fallbacks."
        ),
    )

    _fundamentals: object = PrivateAttr(default=None)

    def _limiter(self) -> "RateLimiter":
        """The plan's limiter, one per process, shared by the bars and the fundamentals adapter."""
        from finance_dag.core.http import shared_limiter

        limits = ((self.requests_per_minute, 60.0),)
        if self.requests_per_day:
            limits += ((self.requests_per_day, 86_400.0),)
        return shared_limiter("alphavantage", limits, self.max_limit_wait_s)

    def _build(self) -> "AlphaVantageBars":
        from finance_dag.market_data.vendors.alpha_vantage import AlphaVantageBars

        require("AlphaVantageResource", ALPHAVANTAGE_API_KEY=self.api_key)
        return AlphaVantageBars(
            self.api_key,
            base_url=self.base_url,
            extended_hours=self.extended_hours,
            throttle_wait=self.throttle_wait_s,
            policy=self.policy(),
            limiter=self._limiter(),
        )

    def bars(self) -> "AlphaVantageBars":
        return self._shared()

    def fundamentals(self) -> "AlphaVantageFundamentals":
        """The company-overview adapter, built on first use (one per resource instance, so its
        cache of overviews serves every call in a run)."""
        from finance_dag.market_data.vendors.alpha_vantage_fundamentals import AlphaVantageFundamentals

        if self._fundamentals is None:
            require("AlphaVantageResource", ALPHAVANTAGE_API_KEY=self.api_key)
            self._fundamentals = AlphaVantageFundamentals(
                self.api_key,
                base_url=self.base_url,
                throttle_wait=self.throttle_wait_s,
                policy=self.policy(),
                limiter=self._limiter(),
            )
        return self._fundamentals


class YahooResource(VendorResource):
    """Yahoo 1-minute bars (fallback): last 30 days only, no credentials."""

    now: str | None = Field(
        default=None,
        description="ISO timestamp standing in for the current time (replays, tests); default: the clock.",
    )

    def _build(self) -> "YahooBars":
        from finance_dag.market_data.vendors.yahoo import YahooBars

        now = datetime.fromisoformat(self.now) if self.now else None
        if now is not None and now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return YahooBars(base_url=self.base_url, now=now, policy=self.policy())

    def bars(self) -> "YahooBars":
        return self._shared()

    def daily(self) -> "YahooBars":
        return self._shared()


class FredResource(VendorResource):
    """FRED macro series (HY OAS, VIX, financial stress by default)."""

    api_key: str = Field(default="", description='Give dg.EnvVar("FRED_API_KEY").')
    series_ids: list[str] = Field(default=list(MACRO_SERIES), description="FRED series ids to fetch.")

    def _build(self) -> "FredMacro":
        from finance_dag.market_data.vendors.fred import FredMacro

        require("FredResource", FRED_API_KEY=self.api_key)
        return FredMacro(
            self.api_key, series_ids=self.series_ids, base_url=self.base_url, policy=self.policy()
        )

    def macro(self) -> "FredMacro":
        return self._shared()


class IbResource(dg.ConfigurableResource):
    """Interactive Brokers through IB Gateway / TWS (ib_async): daily bars and the broker.

    One client id per purpose, as the seed's user runs it: a read-only one for planning, another
    for cleanup and orders, a third for historical data (IB serves one session per client id).
    """

    host: str = Field(default="127.0.0.1", description="IB Gateway / TWS host.")
    port: int = Field(default=4001, description="4001 live / 4002 paper for IB Gateway; 7496 / 7497 for TWS.")
    account: str | None = Field(default=None, description="Account id; default the first managed account.")
    plan_client_id: int = Field(default=5, description="Read-only client id used to build trade plans.")
    trade_client_id: int = Field(default=6, description="Client id used for cleanup and orders.")
    data_client_id: int = Field(default=17, description="Client id used for historical daily bars.")
    timeout_s: float = Field(default=30.0, description="Per-call timeout in seconds.")

    def daily(self) -> "IbDaily":
        from finance_dag.market_data.vendors.ib import IbDaily

        return IbDaily(self.host, self.port, self.data_client_id, timeout=self.timeout_s)

    def broker(self, purpose: str) -> "IbBroker":
        """A connection for ``purpose``: "plan" is read-only, "trade" may cancel and place."""
        from finance_dag.brokers.ib import IbBroker

        client = self.plan_client_id if purpose == "plan" else self.trade_client_id
        return IbBroker(
            self.host, self.port, client, self.account, readonly=purpose == "plan", timeout=self.timeout_s
        )


class AlpacaTradingResource(VendorResource):
    """Alpaca's Trading API (alpaca-py ``TradingClient``), paper unless ``paper`` is false."""

    api_key: str = Field(default="", description='Give dg.EnvVar("ALPACA_API_KEY").')
    secret_key: str = Field(default="", description='Give dg.EnvVar("ALPACA_SECRET_KEY").')
    paper: bool = Field(default=True, description="Paper trading (default); false trades the live account.")

    def broker(self, purpose: str) -> "AlpacaBroker":
        from finance_dag.brokers.alpaca import AlpacaBroker

        require("AlpacaTradingResource", ALPACA_API_KEY=self.api_key, ALPACA_SECRET_KEY=self.secret_key)
        return AlpacaBroker(
            self.api_key, self.secret_key, paper=self.paper, base_url=self.base_url, policy=self.policy()
        )
