"""The asset contract every domain follows, and helpers that make it cheap to keep.

Every asset has a description, its domain as group, kinds, owners, a code version that
changes when the logic producing it changes (``code_version`` hashes the source of the pure
modules whose logic it runs, callees included), domain tags, and for lake tables a column schema generated from the
polars schema it writes (``table_schema``) and column lineage where columns derive from an
upstream asset's columns (``column_lineage``). ``tests/test_contract.py`` checks all of it for
every asset of every domain; ``definitions.apply_policies`` fills owners and tags.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Mapping, Sequence
from types import ModuleType

import dagster as dg
import polars as pl

OWNERS = ("team:quant-data",)
DOMAIN_TAG = "finance_dag/domain"
COLUMN_SCHEMA = "dagster/column_schema"
COLUMN_LINEAGE = "dagster/column_lineage"


def code_version(asset: str, *logic: ModuleType) -> str:
    """A short hash of ``asset``'s name and the source of the modules holding its logic: it
    changes whenever that logic changes (and, conservatively, when their docs do)."""
    digest = hashlib.sha1(asset.encode())
    for module in sorted(logic, key=lambda m: m.__name__):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:12]


def table_schema(schema: pl.Schema, descriptions: Mapping[str, str]) -> dg.TableSchema:
    """The Dagster column schema of a polars schema; every column needs a description (with
    its unit where it has one), so a new column cannot ship undocumented."""
    missing = [name for name in schema if name not in descriptions]
    if missing:
        raise ValueError(f"no column description for {', '.join(missing)}")
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, str(dtype), description=descriptions[name]) for name, dtype in schema.items()
        ]
    )


def table_metadata(schema: pl.Schema, descriptions: Mapping[str, str]) -> dict[str, object]:
    """Definition metadata of a lake table: its column schema."""
    return {COLUMN_SCHEMA: table_schema(schema, descriptions)}


def column_lineage(upstream: dg.AssetKey, derived: Mapping[str, Sequence[str]]) -> dg.TableColumnLineage:
    """``{column: [upstream columns]}`` as Dagster column lineage on ``upstream``."""
    return dg.TableColumnLineage(
        deps_by_column={
            column: [dg.TableColumnDep(asset_key=upstream, column_name=name) for name in sources]
            for column, sources in derived.items()
        }
    )
