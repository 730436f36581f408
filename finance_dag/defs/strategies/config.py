"""Run config of the strategy backtests: walk-forward windows, parameter grids, costs, and the
position-sizing and risk controls (``finance_dag.strategies.sizing.Sizing``). Every default is the
documented one (docs/strategies.md); a bad value fails the run naming it."""

import dagster as dg
from pydantic import Field

from finance_dag.backtest.costs import CostModel
from finance_dag.strategies.research import grid_with
from finance_dag.strategies.signals import get
from finance_dag.strategies.sizing import Sizing


class StrategyRunConfig(dg.Config):
    """Walk-forward windows (sessions), parameter grids per strategy, costs and sizing."""

    train_sessions: int = Field(252, description="Training sessions per window (parameter choice).")
    test_sessions: int = Field(63, description="Out-of-sample sessions per window; windows roll by this.")
    params: dict[str, dict[str, list[float]]] = Field(
        default_factory=dict,
        description=(
            "Per strategy, parameter -> values to try instead of the declared grid (one value fixes it), "
            'e.g. {"rsi_reversal": {"period": [14]}}. Unknown names and out-of-range values fail the run.'
        ),
    )
    regime: str = Field(
        "vix",
        description=(
            "volatility_regime_filter's volatility: vix (FRED VIXCLS through the macro_series resource, the "
            "simulated series by default; falls back to the proxy when there is none) or realised (per symbol)."
        ),
    )
    capital: float = Field(1_000_000.0, description="Book size, USD (sizes the orders the costs price).")
    commission_per_share: float = Field(0.005, description="USD per share (IB fixed tier).")
    min_commission: float = Field(1.0, description="USD per order.")
    half_spread_bps: float = Field(2.0, description="Half the quoted spread, basis points, paid per order.")
    impact_coefficient: float = Field(0.1, description="Y of the square-root impact Y·σ·sqrt(q/ADV).")
    scheme: str = Field("equal", description="equal (p/N) or risk_parity (1/σ budgets).")
    max_correlation: float = Field(
        0.0, description="Correlation above which held names share budget; 0 = off."
    )
    sector_limit: float = Field(0.0, description="Max gross weight per sector; 0 = off.")
    factor_limit: float | None = Field(
        None, description="Max |net exposure| to each risk-domain factor; null = off (needs factor_returns)."
    )
    vol_target: float = Field(0.0, description="Annualised volatility target of the book; 0 = off.")
    kelly_fraction: float = Field(0.0, description="Fraction of the Kelly leverage; 0 = off.")
    kelly_cap: float = Field(1.0, description="Cap on the Kelly leverage.")
    max_leverage: float = Field(2.0, description="Cap on the volatility-target (x Kelly) leverage.")
    max_drawdown: float = Field(0.0, description="Drawdown that de-risks the book; 0 = off.")
    derisk_to: float = Field(0.5, description="Exposure multiplier while de-risked.")

    def validate_names(self) -> None:
        """Unknown strategies or parameters in ``params``, values out of range, bad windows, sizing
        or costs fail the run naming them, before any work."""
        try:
            for name, overrides in self.params.items():
                grid_with(get(name), overrides)
        except ValueError as error:
            raise dg.Failure(f"strategy run config: {error}") from error
        if self.train_sessions < 20 or self.test_sessions < 5:
            raise dg.Failure(
                f"train_sessions={self.train_sessions} and test_sessions={self.test_sessions} must be at least 20 and 5"
            )
        if self.regime not in ("vix", "realised"):
            raise dg.Failure(f"strategy run config: regime={self.regime!r} must be 'vix' or 'realised'")
        self.sizing()
        self.cost_model()

    def sizing(self) -> Sizing:
        try:
            return Sizing(
                scheme=self.scheme,  # type: ignore[arg-type]
                max_correlation=self.max_correlation,
                sector_limit=self.sector_limit,
                factor_limit=self.factor_limit,
                vol_target=self.vol_target,
                kelly_fraction=self.kelly_fraction,
                kelly_cap=self.kelly_cap,
                max_leverage=self.max_leverage,
                max_drawdown=self.max_drawdown,
                derisk_to=self.derisk_to,
            )
        except ValueError as error:
            raise dg.Failure(f"strategy run config: {error}") from error

    def cost_model(self) -> CostModel:
        try:
            return CostModel(
                commission_per_share=self.commission_per_share,
                min_commission=self.min_commission,
                half_spread_bps=self.half_spread_bps,
                impact_coefficient=self.impact_coefficient,
            )
        except ValueError as error:
            raise dg.Failure(f"strategy run config: {error}") from error


__all__ = ["StrategyRunConfig"]
