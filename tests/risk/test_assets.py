"""The risk domain through Dagster on the embedded default: the ETF domain's session, then the
factor history of ``RISK_WINDOW`` and the session's group, read back from the lake and the
metadata; and missing fundamentals leaving a stock's value exposure null with the reason."""

import math
from datetime import date

import dagster as dg
import numpy as np
import polars as pl
import pytest

from finance_dag.core import calendar
from finance_dag.core.lake import Lake
from finance_dag.defs.risk.resources import EquityDataResource
from finance_dag.risk.attribution import UNCLASSIFIED
from finance_dag.risk.model import FACTORS, STANDARDISED
from tests.support import ETF_WINDOW, RISK_WINDOW, make_defs, materialise_etf, materialise_risk

DAY = date(2024, 11, 29)
KEY = DAY.isoformat()
BOOKS = ("target_portfolio", "broker_positions")
STOCKS = 3_000


def metadata(instance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def check_passed(instance, asset: str, check: str) -> bool:
    record = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(dg.AssetKey(asset), check))
    return record.event.dagster_event.event_specific_data.passed


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The ETF domain's session, then the risk domain's history and session, on a fresh lake."""
    root = str(tmp_path_factory.mktemp("risk") / "lake")
    defs = make_defs(root, env={**ETF_WINDOW, **RISK_WINDOW})
    instance = dg.DagsterInstance.ephemeral()
    materialise_etf(defs, instance, DAY)
    materialise_risk(defs, instance, DAY)
    return defs, instance, Lake(root)


@pytest.fixture(scope="module")
def figures(pipeline) -> dict[str, dict[str, float]]:
    """risk_attribution's table as book → metric → value."""
    _, _, lake = pipeline
    table = lake.read_parquet(f"risk_attribution/date={KEY}.parquet")
    out: dict[str, dict[str, float]] = {}
    for book, metric, value in table.iter_rows():
        out.setdefault(book, {})[metric] = value
    return out


def test_exposures_cover_the_universe_standardised_per_style(pipeline):
    _, instance, lake = pipeline
    frame = lake.read_parquet(f"factor_exposures/date={KEY}.parquet")
    assert frame.height == STOCKS and frame["symbol"].is_unique().all()
    assert frame["date"].unique().to_list() == [DAY]
    assert frame.select(FACTORS).null_count().sum_horizontal().item() == 0
    for factor in STANDARDISED:
        mean = (frame[factor] * frame["cap"]).sum() / frame["cap"].sum()
        assert abs(mean) < 1e-9 and frame[factor].std(ddof=0) == pytest.approx(1.0, abs=1e-9), factor
    assert 0.5 < frame["market"].mean() < 1.5  # raw beta, not standardised
    seen = metadata(instance, "factor_exposures")
    assert seen["stocks"] == seen["complete"] == STOCKS
    assert check_passed(instance, "factor_exposures", "standardised")


def test_each_sessions_regression_uses_every_stock(pipeline):
    _, instance, lake = pipeline
    first = date.fromisoformat(RISK_WINDOW["RISK_START_DATE"])
    sessions = calendar.sessions(first, DAY)
    rows = pl.concat(
        [lake.read_parquet(f"factor_returns/date={d.isoformat()}.parquet") for d in sessions], how="diagonal"
    )
    assert rows["date"].to_list() == sessions
    opening, fitted = rows.head(1), rows.slice(1)  # the window's first session has nothing before it
    assert opening["used"].item() == 0 and opening["r2"].item() is None
    assert fitted["r2"].is_between(0.0, 1.0, closed="none").all() and (fitted["used"] == STOCKS).all()
    assert fitted.select(FACTORS).null_count().sum_horizontal().item() == 0
    residuals = lake.read_parquet(f"factor_returns/date={KEY}/residuals.parquet")
    assert residuals.height == STOCKS and residuals["specific_return"].is_finite().all()
    seen = metadata(instance, "factor_returns")
    assert seen["stocks"] == STOCKS and 0 < seen["r2"] < 1


def test_the_factor_covariance_is_symmetric_and_positive_semidefinite(pipeline):
    _, instance, lake = pipeline
    matrix = lake.read_parquet(f"factor_covariance/date={KEY}.parquet")
    factors = matrix["factor"].to_list()
    assert tuple(factors[:6]) == FACTORS and len(factors) > 6  # styles, then sectors
    assert matrix.columns == ["factor", *factors]
    values = matrix.drop("factor").to_numpy()
    assert np.array_equal(values, values.T)
    assert np.linalg.eigvalsh(values).min() >= -1e-12 and (np.diag(values) > 0).all()
    specific = lake.read_parquet(f"factor_covariance/date={KEY}/specific.parquet")
    assert specific.height == STOCKS and (specific["specific_variance"] > 0).all()
    assert check_passed(instance, "factor_covariance", "positive_semidefinite")


def test_both_books_are_attributed_and_their_contributions_add_up_to_the_volatility(pipeline, figures):
    _, instance, lake = pipeline
    assert set(figures) == set(BOOKS)
    for book in BOOKS:
        f = figures[book]
        sigma = f["volatility_daily"]
        assert f["volatility_annual"] > 0 and f["volatility_annual"] == pytest.approx(sigma * math.sqrt(252))
        assert f["factor_share"] + f["specific_share"] == pytest.approx(1.0)
        assert 0 <= f["diversification"] <= 1 and f["excluded_weight"] == 0
        folder = f"risk_attribution/date={KEY}/{book}"
        positions = lake.read_parquet(f"{folder}/positions.parquet")
        assert positions.height > 0 and abs(positions["contribution"].sum() - sigma) < 1e-9, book
        factors = lake.read_parquet(f"{folder}/factors.parquet")
        specific_contribution = f["specific_share"] * sigma  # wᵀDw / σ
        assert abs(factors["contribution"].sum() + specific_contribution - sigma) < 1e-9, book
        total = positions["weight"].sum()
        for table in ("sectors", "regions"):
            groups = lake.read_parquet(f"{folder}/{table}.parquet")
            assert groups["label"].null_count() == 0, (book, table)
            assert groups["weight"].sum() == pytest.approx(total), (book, table)
    target = lake.read_parquet(f"target_portfolio/date={KEY}.parquet")
    attributed = lake.read_parquet(f"risk_attribution/date={KEY}/target_portfolio/positions.parquet")
    assert set(attributed["symbol"]) == set(target["symbol"])
    sectors = lake.read_parquet(f"risk_attribution/date={KEY}/target_portfolio/sectors.parquet")
    assert UNCLASSIFIED in sectors["label"]  # uncategorised ETFs are held
    seen = metadata(instance, "risk_attribution")
    for book in BOOKS:
        assert seen[f"{book}_volatility_annual"] == pytest.approx(figures[book]["volatility_annual"])
        assert "![contributions]" in seen[f"{book}_contribution_chart"]


def test_var_grows_with_confidence_and_with_the_square_root_of_the_horizon(pipeline, figures):
    for book in BOOKS:
        f = figures[book]
        for method in ("parametric", "historical"):
            assert f[f"{method}_var_99_1d"] > f[f"{method}_var_95_1d"] > 0, (book, method)
            for c in (95, 99):
                one, ten = f[f"{method}_var_{c}_1d"], f[f"{method}_var_{c}_10d"]
                assert ten == pytest.approx(one * math.sqrt(10), rel=1e-12), (book, method, c)
                assert f[f"{method}_cvar_{c}_1d"] > one, (book, method, c)
        z99 = 2.3263478740408408
        assert f["parametric_var_99_1d"] == pytest.approx(z99 * f["volatility_daily"], rel=1e-9)


def test_factor_adjusted_signals_score_every_scored_etf_with_an_action_and_an_explanation(pipeline):
    _, instance, lake = pipeline
    scores = lake.read_parquet(f"etf_factor_scores/date={KEY}.parquet").filter(pl.col("status") == "scored")
    table = lake.read_parquet(f"factor_adjusted_signals/date={KEY}.parquet")
    assert table.height == scores.height and table["symbol"].is_unique().all()
    assert set(table["symbol"]) == set(scores["symbol"])
    assert set(table["action"].unique()) <= {"buy", "hold", "sell"}
    assert table["explanation"].null_count() == 0 and (table["explanation"].str.len_chars() > 0).all()
    adjusted = table.filter(pl.col("adjusted_confidence").is_not_null())
    assert adjusted.height > 0.9 * table.height
    assert (
        adjusted["adjusted_confidence"] <= adjusted["confidence"] + 5e-7
    ).all()  # only lowers it (6 decimals)
    assert metadata(instance, "factor_adjusted_signals")["dagster/row_count"] == table.height


class MissingFundamentals(EquityDataResource):
    """The simulated universe with some names' book value unknown and one name's row absent."""

    no_book_value: list[str] = []
    no_row: list[str] = []

    def fundamentals(self, day: date) -> pl.DataFrame:
        frame = super().fundamentals(day).filter(~pl.col("symbol").is_in(self.no_row))
        return frame.with_columns(
            book_value=pl.when(pl.col("symbol").is_in(self.no_book_value)).then(None).otherwise("book_value")
        )


def test_missing_fundamentals_leave_the_value_exposure_null_with_the_reason(tmp_path):
    symbols = EquityDataResource().symbols()
    no_book_value, no_row = [symbols[3], symbols[1500]], [symbols[2999]]
    equity_data = MissingFundamentals(no_book_value=no_book_value, no_row=no_row)
    defs = make_defs(str(tmp_path / "lake"), env=RISK_WINDOW, equity_data=equity_data)
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def("risk_history_job").get_subset(
        asset_selection={dg.AssetKey("factor_exposures")}
    )
    result = job.execute_in_process(instance=instance, partition_key=KEY, raise_on_error=False)
    assert result.success
    frame = Lake(str(tmp_path / "lake")).read_parquet(f"factor_exposures/date={KEY}.parquet")
    assert frame.height == STOCKS
    missing = frame.filter(pl.col("value").is_null())
    assert sorted(missing["symbol"]) == sorted(no_book_value + no_row)
    for row in missing.iter_rows(named=True):
        assert f"no fundamentals for {row['symbol']}" in row["missing_reason"]
        assert row["size"] is not None and row["momentum"] is not None  # only value is missing
    assert frame.filter(pl.col("symbol").is_in(no_row))["sector"].item() is None
    others = frame.filter(pl.col("value").is_not_null())
    assert others["missing_reason"].null_count() == others.height
    mean = (others["value"] * others["cap"]).sum() / others["cap"].sum()  # standardised without them
    assert abs(mean) < 1e-9 and others["value"].std(ddof=0) == pytest.approx(1.0, abs=1e-9)
    seen = metadata(instance, "factor_exposures")
    assert seen["complete"] == STOCKS - 3 and "no fundamentals for" in seen["missing_by_reason"]
    assert check_passed(instance, "factor_exposures", "standardised")
