"""The lake as a Dagster resource, lake paths of asset partitions, and the IO manager.

Storage rule for every domain: the lake path of a partition comes from the asset's full key
and the partitions definition's own dimension names (``lake_path``):
``{asset/key/path}/{dimension=value}/….parquet`` with non-time dimensions first (per-symbol
scans are cheap) and the trading-day dimension last as ``date=…``. A single static dimension
is named by the asset's ``finance_dag/partition_dimension`` metadata (``STATIC_DIMENSION``). A
partition stored as several files (``minute_bars``: one file per symbol-day of the session)
names their glob in ``finance_dag/partition_files`` with a ``{partition}`` placeholder.

Which path writes: an asset over a range of partitions (``BackfillPolicy.single_run()``)
writes its partitions itself through ``finance_dag.platform.ranged.PartitionWriter``; an
unpartitioned asset returns a polars frame and this IO manager writes it. Either way, loading
one partition (``defs.load_asset_value``) goes through the IO manager.
"""

from collections.abc import Iterable
from typing import Any

import dagster as dg
import polars as pl
from pydantic import PrivateAttr

from finance_dag.core.lake import Lake, StorageError, partition_path
from finance_dag.core.settings import DEFAULT_STORAGE

STATIC_DIMENSION = "finance_dag/partition_dimension"
PARTITION_FILES = "finance_dag/partition_files"  # glob of a partition stored as several files
TIME_DIMENSION = "date"


class LakeResource(dg.ConfigurableResource):
    """Parquet lake root: a local folder or ``s3://bucket/prefix`` (any S3-compatible store)."""

    root: str = DEFAULT_STORAGE
    endpoint_url: str | None = None

    _lake: Lake | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        lake = Lake(self.root, self.endpoint_url or None)
        lake.check()  # a bad root fails the run at start-up, naming FINANCE_DAG_STORAGE
        self._lake = lake

    @property
    def lake(self) -> Lake:
        if self._lake is None:  # used outside a run (sensors, notebooks)
            self._lake = Lake(self.root, self.endpoint_url or None)
        return self._lake


def _dimension_values(
    partitions_def: dg.PartitionsDefinition, key: str, static_dimension: str | None
) -> dict[str, str]:
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        dims = partitions_def.get_partition_key_from_str(key).keys_by_dimension
        time_dims = {
            d.name
            for d in partitions_def.partitions_defs
            if isinstance(d.partitions_def, dg.TimeWindowPartitionsDefinition)
        }
        return dict(sorted(dims.items(), key=lambda kv: (kv[0] in time_dims, kv[0])))
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return {TIME_DIMENSION: key}
    if not static_dimension:
        raise ValueError(f"static partitions need a dimension name: set metadata {STATIC_DIMENSION!r}")
    return {static_dimension: key}


def lake_path(
    asset_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None = None,
    key: str | None = None,
    static_dimension: str | None = None,
) -> str:
    """Lake path of one partition of ``asset_key`` (or of the unpartitioned asset)."""
    asset = "/".join(asset_key.path)
    if partitions_def is None or key is None:
        return partition_path(asset)
    return partition_path(asset, **_dimension_values(partitions_def, key, static_dimension))


def read_partitions(
    lake: Lake, asset_key: dg.AssetKey, partitions_def: dg.PartitionsDefinition, keys: Iterable[str]
) -> pl.DataFrame:
    """The partitions ``keys`` of an asset that are in the lake, concatenated (absent ones skipped)."""
    paths = (lake_path(asset_key, partitions_def, key) for key in keys)
    return lake.read_many(path for path in paths if lake.exists(path))


def asset_lake_path(assets_def: dg.AssetsDefinition, key: str | None = None) -> str:
    """``lake_path`` for an asset definition (its key, partitions and dimension metadata)."""
    metadata = assets_def.specs_by_key[assets_def.key].metadata
    return lake_path(assets_def.key, assets_def.partitions_def, key, metadata.get(STATIC_DIMENSION))


class LakeIOManager(dg.ConfigurableIOManager):
    """Stores polars frames in the lake, one file per partition (see the module docstring).

    Writes an unpartitioned or single-partition frame; assets over ranges write their own
    partitions and return nothing. Loading one partition returns its frame; a partition
    stored as a folder of files (``consolidated_bars``) is read whole.
    """

    lake: LakeResource

    @staticmethod
    def _metadata(context: dg.InputContext | dg.OutputContext) -> dict:
        output = context if isinstance(context, dg.OutputContext) else context.upstream_output
        return dict((output.definition_metadata if output is not None else None) or {})

    def _path(self, context: dg.InputContext | dg.OutputContext, key: str | None) -> str:
        defn = context.asset_partitions_def if context.has_asset_partitions else None
        return lake_path(context.asset_key, defn, key, self._metadata(context).get(STATIC_DIMENSION))

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()}: expected a polars DataFrame, got {type(obj).__name__}"
            )
        if context.has_asset_partitions and len(context.asset_partition_keys) != 1:
            raise TypeError(
                f"{context.asset_key.to_user_string()}: a run over several partitions writes them itself "
                "(finance_dag.platform.ranged.PartitionWriter) and returns nothing"
            )
        key = context.asset_partition_key if context.has_asset_partitions else None
        self.lake.lake.write_parquet(self._path(context, key), obj)

    def _read_partition(self, path: str) -> pl.DataFrame | None:
        lake = self.lake.lake
        if lake.exists(path):
            return lake.read_parquet(path)
        folder = path.removesuffix(".parquet")
        files = lake.list_files(folder)
        return lake.read_many(f.path for f in files) if files else None

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        if not context.has_asset_partitions:
            return self._require(self._path(context, None))
        keys = list(context.asset_partition_keys)
        if len(keys) != 1:
            raise ValueError(
                f"{context.asset_key.to_user_string()}: loads one partition at a time, asked for {len(keys)}; "
                "declare a dep and read the lake in chunks for many"
            )
        pattern = self._metadata(context).get(PARTITION_FILES)
        if pattern:
            files = self.lake.lake.glob(str(pattern).format(partition=keys[0]))
            if not files:
                raise StorageError(f"no files match {self.lake.lake.uri(pattern.format(partition=keys[0]))}")
            return self.lake.lake.read_many(files)
        return self._require(self._path(context, keys[0]))

    def _require(self, path: str) -> pl.DataFrame:
        frame = self._read_partition(path)
        if frame is None:
            raise StorageError(f"no file at {self.lake.lake.uri(path)}: materialize it first")
        return frame
