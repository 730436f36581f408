"""The asset contract, for every asset of every domain, and the layout rules of the platform.

- every asset: description, group = its domain package, kinds, owners, code version, domain tag;
- every lake table: a column schema with a description per column;
- every materialisation: a row count and a readable preview; derived tables: column lineage;
- the assets the schedule keeps current: a freshness policy;
- pure packages never import Dagster;
- asset keys, partitions and check names match the committed snapshot.
"""

import ast
import json
import os
from pathlib import Path

import dagster as dg
import pytest

from finance_dag.core import calendar
from finance_dag.definitions import domains
from finance_dag.platform.contract import COLUMN_LINEAGE, COLUMN_SCHEMA, DOMAIN_TAG
from finance_dag.platform.storage import PARTITION_FILES, asset_lake_path
from tests.support import (
    ETF_WINDOW,
    RISK_WINDOW,
    THANKSGIVING_WEEK,
    make_defs,
    materialise_etf,
    materialise_market_data,
    materialise_risk,
    materialise_strategies,
    run_job,
)

PACKAGE = Path(__file__).parents[1] / "finance_dag"
ORCHESTRATION = {"defs", "platform", "definitions.py", "demo.py"}  # the only places Dagster may be imported
SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_keys.json"
SCHEDULED = {  # kept current by a daily schedule (and, for market data, the automation after it)
    # market data: the after-close schedule, then declarative automation
    "minute_bars",
    "daily_bars",
    "bar_coverage",
    "coverage_report",
    "consolidated_bars",
    # lending_daily
    "lending_snapshots",
    "lending_factors",
    "extended_lending_factors",
    "lending_prices",
    "factor_ic_report",
    "squeeze_scores",
    "daily_digest",
    # etf_daily, then trade_plan_daily
    "etf_universe",
    "etf_prices",
    "etf_price_history",
    "etf_factor_scores",
    "target_portfolio",
    "portfolio_backtest",
    "trade_plan",
    # risk_daily
    "factor_exposures",
    "factor_returns",
    "factor_covariance",
    "risk_attribution",
    "factor_adjusted_signals",
}
DERIVED = {  # asset -> the upstream asset its columns are computed from
    "daily_bars": "minute_bars",
    "bar_coverage": "minute_bars",
    "lending_factors": "lending_snapshots",
    "extended_lending_factors": "lending_snapshots",
}


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> list[dg.AssetSpec]:
    return list(make_defs(str(tmp_path_factory.mktemp("lake"))).resolve_all_asset_specs())


def test_every_asset_carries_the_contract(specs):
    assert specs
    for spec in specs:
        name = spec.key.to_user_string()
        assert spec.description and len(spec.description) > 40, name
        assert spec.group_name in domains(), f"{name}: group {spec.group_name!r} is not a domain package"
        assert spec.tags.get(DOMAIN_TAG) == spec.group_name, name
        assert spec.kinds and spec.owners and spec.code_version, name
        if "parquet" in spec.kinds:
            schema = spec.metadata.get(COLUMN_SCHEMA)
            assert isinstance(schema, dg.TableSchema) and schema.columns, f"{name}: no column schema"
            assert all(c.description for c in schema.columns), f"{name}: a column lacks a description"
        if name in SCHEDULED:
            assert spec.freshness_policy is not None, f"{name}: no freshness expectation"


def test_a_fixed_historical_window_expects_no_freshness(tmp_path):
    from finance_dag.definitions import build_definitions
    from tests.support import settings_for

    demo = build_definitions(settings_for(str(tmp_path), START_DATE="2024-11-15", END_DATE="2024-11-29"))
    assert all(spec.freshness_policy is None for spec in demo.resolve_all_asset_specs())


def test_code_versions_follow_the_logic(specs, tmp_path, monkeypatch):
    """The version hashes the modules holding an asset's logic: an edit there changes it."""
    import importlib
    import sys

    from finance_dag.platform.contract import code_version

    (tmp_path / "logic_probe.py").write_text("def rule(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = importlib.import_module("logic_probe")
    before = code_version("asset", probe)
    (tmp_path / "logic_probe.py").write_text("def rule(x):\n    return x + 2\n")
    del sys.modules["logic_probe"]
    assert code_version("asset", importlib.import_module("logic_probe")) != before
    versions = {spec.key.to_user_string(): spec.code_version for spec in specs}
    assert len(set(versions.values())) == len(versions)


def test_every_materialisation_has_a_row_count_a_preview_and_lineage_where_derived(tmp_path, instance):
    defs = make_defs(str(tmp_path / "lake"), env={**ETF_WINDOW, **RISK_WINDOW})
    day = THANKSGIVING_WEEK[1]
    materialise_market_data(defs, instance, calendar.sessions_before(day, 29)[0], day)  # 30 sessions
    materialise_strategies(defs, instance)
    run_job(defs, instance, "lending_job", {"dagster/partition": day.isoformat()})
    materialise_etf(defs, instance, day)
    materialise_risk(defs, instance, day)
    for spec in defs.resolve_all_asset_specs():
        name = spec.key.to_user_string()
        event = instance.get_latest_materialization_event(spec.key)
        assert event is not None, f"{name} was not materialised"
        metadata = event.asset_materialization.metadata
        assert "dagster/row_count" in metadata and "preview" in metadata, name
        if name in DERIVED:
            lineage = metadata[COLUMN_LINEAGE].value.deps_by_column
            columns = {c.name for c in spec.metadata[COLUMN_SCHEMA].columns}
            assert set(lineage) <= columns and {"date", "symbol"} <= set(lineage), name
            assert {d.asset_key for deps in lineage.values() for d in deps} == {dg.AssetKey(DERIVED[name])}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_pure_packages_never_import_dagster():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in ORCHESTRATION
        and {"dagster", "dagster_aws"} & _imports(path)
    ]
    assert not offenders, f"pure modules importing Dagster: {offenders}"
    assert (PACKAGE / "core").is_dir() and (PACKAGE / "market_data").is_dir()


def snapshot(defs: dg.Definitions) -> dict:
    """Asset keys with their partitions (dimension names, start) and check names."""

    def partitions(defn):
        if defn is None:
            return None
        if isinstance(defn, dg.MultiPartitionsDefinition):
            return {d.name: partitions(d.partitions_def) for d in defn.partitions_defs}
        if isinstance(defn, dg.TimeWindowPartitionsDefinition):
            return {"type": "trading days", "start": defn.start.date().isoformat(), "fmt": defn.fmt}
        return {"type": type(defn).__name__}

    def first_lake_path(key: dg.AssetKey) -> str:
        assets_def = defs.resolve_assets_def(key)
        key = assets_def.partitions_def.get_first_partition_key() if assets_def.partitions_def else None
        files = assets_def.specs_by_key[assets_def.key].metadata.get(PARTITION_FILES)
        return str(files).format(partition=key) if files else asset_lake_path(assets_def, key)

    graph = defs.resolve_asset_graph()
    return {
        key.to_user_string(): {
            "partitions": partitions(graph.get(key).partitions_def),
            "checks": sorted(c.name for c in graph.get_check_keys_for_assets({key})),
            "first_lake_path": first_lake_path(key),
        }
        for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    }


def test_asset_keys_partitions_and_checks_match_the_snapshot(tmp_path):
    """A key change strands a partitioned lake: change the snapshot only on purpose
    (UPDATE_SNAPSHOT=1 pytest tests/test_contract.py)."""
    current = snapshot(make_defs(str(tmp_path)))
    if os.environ.get("UPDATE_SNAPSHOT"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())
