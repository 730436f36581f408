"""Transaction costs of a position path: commission, half-spread and square-root market impact.

One cost model, two views of the same trades:

- :meth:`CostModel.trade_costs` prices a trade list (one row per order: date, symbol, signed
  shares, price, average daily volume, daily volatility) in currency;
- :meth:`CostModel.weight_costs` prices the rebalancing of a daily weights path (T×N) as a fraction
  of capital, so a vectorised daily strategy's net return is ``gross[t] - cost[t]``.

Per order of ``q`` shares (``|q|`` traded, the sign ignored: selling short costs what buying
does) at price ``P`` with average daily volume ``ADV`` (shares) and daily return volatility ``σ``:

- **commission** ``min(max(min_commission, commission_per_share · |q|), max_commission_rate · |q| · P)``,
  Interactive Brokers' fixed tier for US stocks ($0.005 a share, $1 minimum, at most 1 % of the
  trade value; the cap is applied last, so it also wins over the minimum on a tiny order);
- **spread** ``half_spread_bps / 10⁴ · |q| · P``: crossing half the quoted spread;
- **impact** ``impact_coefficient · σ · sqrt(|q| / ADV) · |q| · P``: the square-root law of market
  impact (the price moves by ``Y · σ · sqrt(Q / V)`` against an order of ``Q`` shares in a market
  trading ``V`` a day; Almgren, Thum, Hauptmann & Li 2005, "Direct estimation of equity market
  impact", Risk; Tóth et al. 2011, "Anomalous price impact and the critical nature of liquidity in
  financial markets", Phys. Rev. X 1, 021006). It grows as ``|q|^1.5``: doubling an order
  multiplies its impact by 2√2, so the cost per share grows with the volume traded.

An order of zero shares costs nothing (no minimum commission). ``σ`` and ``ADV`` must be known
when the order is placed: pass trailing estimates (e.g. the 21-session standard deviation of
daily returns and mean volume up to the decision date), never full-sample ones.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import polars as pl

__all__ = ["DEFAULT_COSTS", "TRADE_COLUMNS", "CostModel"]

TRADE_COLUMNS = ("date", "symbol", "shares", "price", "adv", "volatility")
_COST_COLUMNS = ("commission", "spread_cost", "impact_cost", "total_cost")


@dataclass(frozen=True)
class CostModel:
    """Cost parameters (currency amounts in the prices' currency).

    - ``commission_per_share``: 0.005, with ``min_commission`` 1.0 per order and
      ``max_commission_rate`` 0.01 (1 % of the order's value): Interactive Brokers' fixed tier for
      US stocks, the same figures as the backtest engine's defaults (which leave the cap out).
    - ``half_spread_bps``: 2.0 basis points of the price, half the quoted spread of a liquid
      large-cap US stock, paid on every order.
    - ``impact_coefficient``: 0.1, the ``Y`` of the square-root law; a modest value (empirical
      estimates for large meta-orders run up to order 1), raise it for illiquid names or stress tests.
    """

    commission_per_share: float = 0.005
    min_commission: float = 1.0
    max_commission_rate: float = 0.01
    half_spread_bps: float = 2.0
    impact_coefficient: float = 0.1

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        bad = [name for name, value in values.items() if not (np.isfinite(value) and value >= 0)]
        if bad:
            raise ValueError(f"CostModel: {bad} must be finite and non-negative")

    def _components(
        self, size: np.ndarray, price: np.ndarray, adv: np.ndarray, volatility: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Commission, spread and impact (currency) of orders of ``size`` ≥ 0 shares; zero where
        ``size`` is 0. Inputs are validated by the caller (:func:`_invalid`)."""
        traded = size > 0
        value = size * np.where(traded, price, 0.0)
        per_share = np.maximum(self.min_commission, self.commission_per_share * size)
        commission = np.where(traded, np.minimum(per_share, self.max_commission_rate * value), 0.0)
        spread = self.half_spread_bps / 1e4 * value
        participation = size / np.where(traded, adv, 1.0)
        impact = self.impact_coefficient * np.where(traded, volatility, 0.0) * np.sqrt(participation) * value
        return commission, spread, impact

    def trade_costs(self, trades: pl.DataFrame) -> pl.DataFrame:
        """Cost of each order of a trade list, in currency.

        ``trades``: ``date``, ``symbol``, ``shares`` (signed: > 0 buys, < 0 sells or shorts),
        ``price`` (> 0, the execution reference price), ``adv`` (average daily volume in shares,
        > 0) and ``volatility`` (σ, the daily standard deviation of simple returns as a fraction,
        ≥ 0); other columns are kept. A row with ``shares`` 0 costs 0 whatever its other values.

        Returns ``trades`` with Float64 ``commission``, ``spread_cost``, ``impact_cost`` and
        ``total_cost`` (their sum), all ≥ 0 (see the module docstring for the formulas).
        """
        missing = [c for c in TRADE_COLUMNS if c not in trades.columns]
        if missing:
            raise ValueError(f"trade_costs: trades lacks column(s) {missing}; it has {trades.columns}")
        numeric = trades.select(pl.col("shares", "price", "adv", "volatility").cast(pl.Float64))
        if numeric["shares"].null_count():
            raise ValueError("trade_costs: shares must not be null (use 0 for no trade)")
        shares, price, adv, volatility = (numeric[c].to_numpy().astype(float) for c in numeric.columns)
        bad = _invalid(shares, price, adv, volatility)
        if bad.any():
            rows = trades.filter(pl.Series(bad)).select("date", "symbol").head(3).rows()
            raise ValueError(
                f"trade_costs: {int(bad.sum())} traded row(s) need price > 0, adv > 0 and volatility ≥ 0 "
                f"(finite), e.g. (date, symbol) {rows}"
            )
        commission, spread, impact = self._components(np.abs(shares), price, adv, volatility)
        costs = {"commission": commission, "spread_cost": spread, "impact_cost": impact}
        costs["total_cost"] = commission + spread + impact
        return trades.with_columns(pl.Series(name, costs[name], dtype=pl.Float64) for name in _COST_COLUMNS)

    def order_costs(
        self, shares: np.ndarray, price: np.ndarray, adv: np.ndarray, volatility: np.ndarray
    ) -> np.ndarray:
        """Total cost (currency) of each order of ``shares`` (any shape, the sign ignored; 0 = no
        order, free) with its ``price``, ``adv`` and daily ``volatility`` (same shape, read only
        where an order is placed): the array form of :meth:`trade_costs`' ``total_cost``."""
        size, *market = (np.asarray(a, dtype=float) for a in (shares, price, adv, volatility))
        for name, a in zip(("price", "adv", "volatility"), market, strict=True):
            if a.shape != size.shape:
                raise ValueError(f"order_costs: {name} has shape {a.shape}, the orders {size.shape}")
        bad = _invalid(size, *market)
        if bad.any():
            where = [tuple(int(i) for i in ix) for ix in np.argwhere(bad)[:3]]
            raise ValueError(
                f"order_costs: {int(bad.sum())} order(s) need price > 0, adv > 0 and volatility ≥ 0 "
                f"(finite), e.g. at index {where}"
            )
        commission, spread, impact = self._components(np.abs(size), *market)
        return commission + spread + impact

    def weight_costs(
        self,
        weights: np.ndarray,
        prices: np.ndarray,
        adv: np.ndarray,
        volatility: np.ndarray,
        capital: float | np.ndarray,
    ) -> np.ndarray:
        """Daily cost, as a fraction of capital, of holding the weights path ``weights`` (T×N).

        Row t of ``weights`` is the book held from session t's close (signed: < 0 is short; NaN
        means no position), so the orders at t's close are ``Δw[t] = w[t] - w[t-1]``, the first
        row bought from cash (``w[-1] = 0``). Each non-zero ``Δw`` is one order of
        ``q = Δw · capital[t] / prices[t]`` (fractional) shares priced like
        :meth:`trade_costs`, and the result is
        ``cost[t] = Σ_symbols (commission + spread + impact) / capital[t]``; per symbol that is
        ``half_spread_bps / 10⁴ · |Δw| + Y · σ · sqrt(|Δw| · capital / (price · ADV)) · |Δw|`` plus
        the commission over capital. ``prices``, ``adv`` (shares) and ``volatility`` (daily σ) are
        T×N and only read where an order is placed; ``capital`` (> 0) is a number or one value per
        session (the book's equity). A daily strategy whose position at t-1 earns session t's
        return then nets ``r_net[t] = Σ w[t-1] · r[t] - cost[t]``.

        Turnover is measured against the previous *target* weights: the drift of the weights with
        prices between two closes is not traded (nor charged), the usual vectorised-backtest
        approximation.
        """
        w = np.nan_to_num(np.asarray(weights, dtype=float), nan=0.0)
        if w.ndim != 2:
            raise ValueError(f"weight_costs: weights must be T×N, got shape {w.shape}")
        cap = np.broadcast_to(np.asarray(capital, dtype=float), w.shape[:1])
        if not (np.isfinite(cap).all() and (cap > 0).all()):
            raise ValueError("weight_costs: capital must be finite and positive")
        price = np.asarray(prices, dtype=float)
        turnover = np.abs(np.diff(w, axis=0, prepend=0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            size = np.where(turnover > 0, turnover * cap[:, None] / price, 0.0)
        return self.order_costs(size, price, adv, volatility).sum(axis=1) / cap


def _invalid(shares: np.ndarray, price: np.ndarray, adv: np.ndarray, volatility: np.ndarray) -> np.ndarray:
    """Orders (``shares`` ≠ 0, or not finite) whose inputs cannot be priced: a price or ADV that is
    not finite and positive, or a volatility that is not finite and ≥ 0."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(price) & (price > 0) & np.isfinite(adv) & (adv > 0)
        ok &= np.isfinite(volatility) & (volatility >= 0)
    return ~np.isfinite(shares) | ((shares != 0) & ~ok)


DEFAULT_COSTS = CostModel()
