"""Lending assets: the day's validated feed and the core lending factors.

``build_assets(settings, parts)`` makes them from the lending domain's settings (universe of
~1,000 names, history window). Formulas: ``finance_dag.lending.factors`` and docs/lending.md.
"""

from datetime import date

import dagster as dg
import polars as pl

from finance_dag.core.reports import markdown_table
from finance_dag.core.settings import Settings
from finance_dag.defs.lending.resources import LendingFeedResource
from finance_dag.lending import factors, feed
from finance_dag.lending.factors import FACTOR_COLUMNS, FACTOR_DESCRIPTIONS, core_factors, lookback_sessions
from finance_dag.lending.feed import COLUMN_DESCRIPTIONS, FEED_SCHEMA, LendingFeedError, LendingSourceError
from finance_dag.platform.contract import code_version, column_lineage, table_metadata
from finance_dag.platform.partitions import DomainPartitions
from finance_dag.platform.ranged import PartitionWriter
from finance_dag.platform.storage import LakeResource, lake_path

GROUP = "lending"
KINDS = {"polars", "parquet"}
SNAPSHOTS = dg.AssetKey("lending_snapshots")
FACTOR_SCHEMA = pl.Schema({"date": pl.Date, "symbol": pl.String, **dict.fromkeys(FACTOR_COLUMNS, pl.Float64)})
FACTOR_LINEAGE = column_lineage(
    SNAPSHOTS,
    {
        "date": ["date"],
        "symbol": ["symbol"],
        "sim": ["short_interest"],
        "bcs": ["fee_bps"],
        "upi": ["utilization_pct"],
        "ftz": ["fee_bps"],
        "dtc_z": ["short_interest", "adv"],
        "lpf": ["rerate_ratio", "b2b_loans", "on_loan_qty"],
    },
)


def build_assets(settings: Settings, parts: DomainPartitions) -> list[dg.AssetsDefinition]:
    lookback = lookback_sessions()

    @dg.asset(
        partitions_def=parts.trading_days,
        group_name=GROUP,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool="lending_feed",
        code_version=code_version("lending_snapshots", feed),
        metadata=table_metadata(FEED_SCHEMA, COLUMN_DESCRIPTIONS),
        description=(
            "The day's securities-lending feed for the lending universe, validated (types; fee >= 0; "
            "0 <= utilisation <= 100; one row per ticker; the file's Date equals the partition) and "
            "stored normalised in snake_case. A bad delivery fails its own day, naming the file, the "
            "column and the offending rows."
        ),
    )
    def lending_snapshots(
        context: dg.AssetExecutionContext, lending_feed: LendingFeedResource, lake: LakeResource
    ) -> dg.MaterializeResult:
        with PartitionWriter(context, lake.lake) as writer:
            for key in context.partition_keys:
                day = date.fromisoformat(key)
                try:
                    raw, source = lending_feed.snapshot(day, parts.symbols)
                    frame = feed.validate_snapshot(raw, day, source)
                except (LendingFeedError, LendingSourceError) as error:
                    writer.fail(key, [str(error)])
                    continue
                writer.write(
                    key,
                    frame,
                    {
                        "source": source,
                        "mean_fee_bps": float(frame["fee_bps"].mean() or 0.0),
                        "mean_utilization_pct": float(frame["utilization_pct"].mean() or 0.0),
                        "preview": dg.MetadataValue.md(markdown_table(frame.head(10))),
                    },
                )
        return writer.result("could not be read or validated")

    @dg.asset(
        partitions_def=parts.trading_days,
        deps=[
            dg.AssetDep(
                lending_snapshots, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-lookback)
            )
        ],
        group_name=GROUP,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("lending_factors", factors),
        metadata=table_metadata(
            FACTOR_SCHEMA, {**FACTOR_DESCRIPTIONS, "date": "As-of session.", "symbol": "Ticker symbol."}
        ),
        description=(
            "Core lending factors per name and session, from that session's snapshot and the "
            f"{lookback} sessions before it only: "
            + " ".join(f"{name.upper()}: {text}" for name, text in FACTOR_DESCRIPTIONS.items())
        ),
    )
    def lending_factors(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        sessions = parts.trading_days.get_partition_keys()
        first, last = sessions.index(context.partition_keys[0]), sessions.index(context.partition_keys[-1])
        paths = [
            lake_path(SNAPSHOTS, parts.trading_days, k) for k in sessions[max(0, first - lookback) : last + 1]
        ]
        history = lake.lake.read_many(p for p in paths if lake.lake.exists(p))
        with PartitionWriter(context, lake.lake) as writer:
            for key in context.partition_keys:
                day = date.fromisoformat(key)
                if history.is_empty() or day not in set(history["date"]):
                    writer.fail(
                        key, [f"no lending_snapshots partition {key} in the lake: materialize it first"]
                    )
                    continue
                frame = core_factors(history, day)
                writer.write(
                    key,
                    frame,
                    {
                        "names_with_all_factors": frame.drop_nulls().height,
                        "preview": dg.MetadataValue.md(markdown_table(frame.head(10))),
                        "dagster/column_lineage": FACTOR_LINEAGE,
                    },
                )
        return writer.result("have no snapshot")

    return [lending_snapshots, lending_factors]
