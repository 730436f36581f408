"""ETF assets: universe → prices → research layout → factor scores → target portfolio →
walk-forward backtest → trade plan. Formulas and decisions: ``finance_dag.etf`` and docs/etf.md.

Every asset is partitioned by as-of session and backfills in one run per range
(``BackfillPolicy.single_run``); the price history is also kept in a yearly research layout
(``etf_price_history``) so a step reads five years of every ETF in one read.
"""

from dataclasses import dataclass
from datetime import date

import dagster as dg
import polars as pl

from finance_dag.backtest.engine import Panel
from finance_dag.core import calendar
from finance_dag.core.reports import markdown_table
from finance_dag.core.settings import Settings
from finance_dag.defs.etf.automation import SCHEDULE
from finance_dag.defs.etf.resources import CATEGORY_FILE, EtfFilesResource, EtfPriceVendorsResource
from finance_dag.etf import directory, history, scores, universe
from finance_dag.etf.directory import DirectoryError
from finance_dag.etf.scores import SCORE_COLUMNS, SCORE_SCHEMA
from finance_dag.etf.universe import UNIVERSE_COLUMNS, UNIVERSE_SCHEMA, CategoryError
from finance_dag.market_data import daily
from finance_dag.market_data.daily import DAILY_PRICE_COLUMNS, DAILY_PRICE_SCHEMA
from finance_dag.platform.contract import code_version, column_lineage, table_metadata
from finance_dag.platform.freshness import after_schedule
from finance_dag.platform.partitions import DomainPartitions
from finance_dag.platform.ranged import PartitionWriter
from finance_dag.platform.storage import LakeResource, lake_path

GROUP = "etf"
KINDS = {"polars", "parquet"}
UNIVERSE = dg.AssetKey("etf_universe")
PRICES = dg.AssetKey("etf_prices")
HISTORY = dg.AssetKey("etf_price_history")
SCORES = dg.AssetKey("etf_factor_scores")
HISTORY_ROOT = "etf_price_history"
SCORE_LOOKBACK = scores.MIN_HISTORY + 5  # sessions of history a score reads (the window and a margin)
FAILURES_SCHEMA = pl.Schema({"symbol": pl.String, "reason": pl.String})
SCORE_LINEAGE = column_lineage(
    HISTORY,
    {c: ["close", "split_ratio", "dividend"] for c in ("momentum", "sharpe", "max_drawdown", "volatility")},
)


class ScoringConfig(dg.Config):
    """Factor weights (the seed's .35/.30/.15/.20 by default); renormalised to sum to 1."""

    momentum_weight: float = scores.DEFAULT_WEIGHTS["momentum"]
    quality_weight: float = scores.DEFAULT_WEIGHTS["quality"]
    value_weight: float = scores.DEFAULT_WEIGHTS["value"]
    volatility_weight: float = scores.DEFAULT_WEIGHTS["volatility"]

    def factor_weights(self) -> dict[str, float]:
        return {
            "momentum": self.momentum_weight,
            "quality": self.quality_weight,
            "value": self.value_weight,
            "volatility": self.volatility_weight,
        }


def unserved_path(key: str) -> str:
    """Where etf_prices lists the symbols no vendor served for session ``key``."""
    return f"etf_prices_unserved/date={key}.parquet"


def latest_universe(lake: LakeResource, parts: DomainPartitions, key: str) -> tuple[pl.DataFrame, str]:
    """The newest universe partition at or before ``key``, and its date."""
    keys = parts.trading_days.get_partition_keys()
    for candidate in reversed(keys[: keys.index(key) + 1]):
        path = lake_path(UNIVERSE, parts.trading_days, candidate)
        if lake.lake.exists(path):
            return lake.lake.read_parquet(path), candidate
    raise dg.Failure(
        f"no etf_universe partition on or before {key}: materialise etf_universe for {key} first"
    )


def build_assets(settings: Settings, parts: DomainPartitions) -> list[dg.AssetsDefinition]:
    days = parts.trading_days

    @dg.asset(
        partitions_def=days,
        group_name=GROUP,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("etf_universe", directory, universe),
        freshness_policy=after_schedule(settings, settings.etf, SCHEDULE),
        metadata=table_metadata(UNIVERSE_SCHEMA, UNIVERSE_COLUMNS),
        description=(
            "The ETF universe of the session: every ETF of NASDAQ Trader's symbol directory "
            "(nasdaqlisted.txt and otherlisted.txt, test issues dropped) with the curated category, "
            "asset class, region and expense ratio where the category file has them. Leveraged and "
            "inverse products are flagged: kept for price collection, excluded from scoring. A malformed "
            "file fails its day naming the file, line and column; the previous universe stays."
        ),
    )
    def etf_universe(
        context: dg.AssetExecutionContext, etf_files: EtfFilesResource, lake: LakeResource
    ) -> dg.MaterializeResult:
        with PartitionWriter(context, lake.lake) as writer:
            for key in context.partition_keys:
                try:
                    files = etf_files.files(date.fromisoformat(key))
                    listed = directory.symbol_directory(
                        {n: t for n, (t, _) in files.items() if n != CATEGORY_FILE}
                    )
                    categories = universe.parse_categories(*files[CATEGORY_FILE])
                except (DirectoryError, CategoryError, FileNotFoundError) as error:
                    writer.fail(key, [str(error)])
                    continue
                built = universe.build_universe(listed, categories)
                etfs = built.etfs
                writer.write(
                    key,
                    etfs,
                    {
                        "etfs": etfs.height,
                        "categorised": int(etfs["categorised"].sum()),
                        "uncategorised": int((~etfs["categorised"]).sum()),
                        "leveraged_or_inverse": int(etfs["leveraged"].sum()),
                        "curated_not_listed": dg.MetadataValue.md(", ".join(built.unlisted) or "none"),
                        "sources": dg.MetadataValue.md("\n".join(f"- `{uri}`" for _, uri in files.values())),
                        "preview": dg.MetadataValue.md(markdown_table(etfs.filter("categorised").head(10))),
                    },
                )
        return writer.result("could not build the universe")

    @dg.asset(
        partitions_def=days,
        deps=[dg.AssetDep(etf_universe, partition_mapping=dg.LastPartitionMapping())],
        group_name=GROUP,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool="etf_prices",
        code_version=code_version("etf_prices", daily),
        freshness_policy=after_schedule(settings, settings.etf, SCHEDULE),
        metadata=table_metadata(DAILY_PRICE_SCHEMA, DAILY_PRICE_COLUMNS),
        description=(
            "Raw daily bars of every ETF of the universe, one file per session for all symbols, through "
            "the daily-price vendor chain (simulated; IB historical bars, Alpaca daily bars, yfinance in "
            "production): fallbacks serve only the symbols the primary missed. Prices are unadjusted, with "
            "each session's split ratio and dividend recorded. A range is fetched in one request sequence; "
            "symbols no vendor serves are listed with every vendor's reason, the day still succeeds."
        ),
    )
    def etf_prices(
        context: dg.AssetExecutionContext, etf_price_vendors: EtfPriceVendorsResource, lake: LakeResource
    ):
        keys = context.partition_keys
        etfs, universe_key = latest_universe(lake, parts, keys[-1])
        fetched = etf_price_vendors.fetch(
            etfs["symbol"].to_list(), date.fromisoformat(keys[0]), date.fromisoformat(keys[-1])
        )
        failures = pl.DataFrame(list(fetched.failures.items()), schema=FAILURES_SCHEMA, orient="row")
        by_day = fetched.prices.partition_by("date", as_dict=True, include_key=True)
        with PartitionWriter(context, lake.lake) as writer:
            for key in keys:
                day_rows = by_day.get((date.fromisoformat(key),))
                if day_rows is None:
                    writer.fail(key, [f"no vendor served any ETF for {key}"])
                    continue
                lake.lake.write_parquet(unserved_path(key), failures)
                writer.write(
                    key,
                    day_rows,
                    {
                        "symbols": day_rows.height,
                        "universe": universe_key,
                        "vendors": dg.MetadataValue.md(
                            markdown_table(day_rows.group_by("source").len().sort("source"))
                        ),
                        "unserved_symbols": failures.height,
                        "unserved": dg.MetadataValue.md(markdown_table(failures.head(20))),
                        "preview": dg.MetadataValue.md(markdown_table(day_rows.head(10))),
                    },
                )
        return writer.result("have no prices")

    @dg.asset(
        deps=[PRICES],
        group_name=GROUP,
        kinds=KINDS,
        code_version=code_version("etf_price_history", history),
        freshness_policy=after_schedule(settings, settings.etf, SCHEDULE),
        metadata=table_metadata(DAILY_PRICE_SCHEMA, DAILY_PRICE_COLUMNS),
        description=(
            "The research layout of etf_prices: one parquet file per calendar year with every ETF's raw "
            "daily rows, so 2,000 ETFs × 5 years load in one read. Rebuilds only the years whose session "
            "files changed since the last build."
        ),
    )
    def etf_price_history(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        store = lake.lake
        files = [f for f in store.list_files(PRICES.path[-1]) if "/date=" in f.path]
        by_year: dict[int, list[str]] = {}
        for info in files:
            by_year.setdefault(int(info.path.split("date=")[1][:4]), []).append(info.path)
        stale = {
            year: sorted(paths)
            for year, paths in by_year.items()
            if not store.exists(history.year_path(HISTORY_ROOT, year))
            or max(store.modified(p) for p in paths) > store.modified(history.year_path(HISTORY_ROOT, year))
        }
        written = history.rebuild_years(store, HISTORY_ROOT, stale)
        return dg.MaterializeResult(
            metadata={
                "years": dg.MetadataValue.md(", ".join(map(str, sorted(by_year)))),
                "rebuilt": dg.MetadataValue.md(
                    markdown_table(pl.DataFrame({"year": list(written), "rows": list(written.values())}))
                    if written
                    else "nothing changed"
                ),
                "sessions": len(files),
                "dagster/row_count": sum(
                    store.row_count(history.year_path(HISTORY_ROOT, y)) for y in by_year
                ),
                "preview": dg.MetadataValue.md(
                    markdown_table(store.read_parquet(history.year_path(HISTORY_ROOT, max(by_year))).tail(10))
                    if by_year
                    else "empty"
                ),
                "path": dg.MetadataValue.path(store.uri(HISTORY_ROOT)),
            }
        )

    @dg.asset(
        partitions_def=days,
        deps=[
            dg.AssetDep(etf_universe, partition_mapping=dg.LastPartitionMapping()),
            dg.AssetDep(
                etf_prices, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-SCORE_LOOKBACK)
            ),
            etf_price_history,
        ],
        group_name=GROUP,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("etf_factor_scores", scores),
        freshness_policy=after_schedule(settings, settings.etf, SCHEDULE),
        metadata=table_metadata(SCORE_SCHEMA, SCORE_COLUMNS),
        description=(
            "Factor scores of every ETF as of the session, from prices up to that session only: momentum "
            "(12-1 months), quality (Sharpe and drawdown), value (expense ratio) and low volatility as "
            "cross-sectional percentiles, blended .35/.30/.15/.20 (value skipped and its weight "
            "redistributed pro rata when no expense ratio is known). ETFs that cannot be scored are kept "
            "with the reason: leveraged/inverse, no vendor data, too short, stale, gaps, jumps."
        ),
    )
    def etf_factor_scores(
        context: dg.AssetExecutionContext, config: ScoringConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        with PartitionWriter(context, lake.lake) as writer:
            for key in context.partition_keys:
                result = score_day(lake, parts, key, config.factor_weights())
                if isinstance(result, str):
                    writer.fail(key, [result])
                    continue
                table = result.table
                excluded = table.filter(pl.col("status") == "excluded")
                reasons = (
                    excluded.select(pl.col("reason").str.split(":").list.first().str.split(" (").list.first())
                    .group_by("reason")
                    .len("etfs")
                    .sort("etfs", descending=True)
                )
                writer.write(
                    key,
                    table,
                    {
                        "scored": table.height - excluded.height,
                        "excluded": excluded.height,
                        "weights": result.note,
                        "excluded_by_reason": dg.MetadataValue.md(markdown_table(reasons)),
                        "preview": dg.MetadataValue.md(
                            markdown_table(
                                table.head(20).select(
                                    "rank",
                                    "symbol",
                                    "score",
                                    "momentum_pct",
                                    "quality_pct",
                                    "value_pct",
                                    "volatility_pct",
                                )
                            )
                        ),
                        "dagster/column_lineage": SCORE_LINEAGE,
                    },
                )
        return writer.result("could not be scored")

    return [etf_universe, etf_prices, etf_price_history, etf_factor_scores]


@dataclass(frozen=True)
class AsOf:
    """What a decision at session ``day`` may see: the total-return panel up to it, the curated
    expense ratios, and the ETFs not to score with the reason."""

    day: date
    panel: Panel
    expense_ratios: dict[str, float | None]
    excluded: dict[str, str]
    universe: pl.DataFrame


def as_of(
    lake: LakeResource,
    parts: DomainPartitions,
    key: str,
    first: date | None = None,
    symbols: list[str] | None = None,
) -> AsOf | str:
    """The inputs of session ``key`` from the research layout (from ``first``, default the
    scores' lookback; ``symbols``, default the whole universe), or why there are none."""
    day = date.fromisoformat(key)
    etfs, _ = latest_universe(lake, parts, key)
    start = first or calendar.sessions_before(day, SCORE_LOOKBACK)[0]
    rows = history.load_history(lake.lake, HISTORY_ROOT, start, day, symbols or etfs["symbol"].to_list())
    if rows.filter(pl.col("date") == day).is_empty():
        return f"etf_price_history has no prices for {key}: materialise etf_prices for {key}, then etf_price_history"
    path = unserved_path(key)
    unserved = (
        lake.lake.read_parquet(path) if lake.lake.exists(path) else pl.DataFrame(schema=FAILURES_SCHEMA)
    )
    excluded = {s: "leveraged or inverse product" for s in etfs.filter("leveraged")["symbol"]}
    excluded |= {s: f"no vendor data: {r}" for s, r in unserved.iter_rows()}
    expense = dict(zip(etfs["symbol"], etfs["expense_ratio"], strict=True))
    return AsOf(day, scores.total_return_panel(rows), expense, excluded, etfs)


def score_day(
    lake: LakeResource, parts: DomainPartitions, key: str, weights: dict[str, float]
) -> scores.Scores | str:
    """The scores of session ``key`` for every ETF of its universe, or why there are none."""
    inputs = as_of(lake, parts, key)
    if isinstance(inputs, str):
        return inputs
    table = scores.score_etfs(inputs.panel, inputs.expense_ratios, inputs.excluded, weights)
    missing = sorted(set(inputs.universe["symbol"]) - set(inputs.panel.symbols))
    extra = pl.DataFrame(
        {
            "symbol": missing,
            "status": "excluded",
            "reason": [inputs.excluded.get(s, "no prices up to the as-of date") for s in missing],
        }
    )
    full = pl.concat([table.table, extra], how="diagonal_relaxed").cast(dict(SCORE_SCHEMA))
    return scores.Scores(full, table.weights, table.note)
