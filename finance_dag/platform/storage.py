"""The lake as a Dagster resource, and the IO manager that reads and writes its partitions."""

from typing import Any

import dagster as dg
import polars as pl
from pydantic import PrivateAttr

from finance_dag.core.lake import Lake, StorageError, partition_path
from finance_dag.core.settings import DEFAULT_STORAGE


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


def _dimension(partitions_def: dg.PartitionsDefinition) -> str:
    return "date" if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition) else "symbol"


def partition_keys_to_path(
    asset: str, partitions_def: dg.PartitionsDefinition | None, key: str | None
) -> str:
    """Lake path of one partition: multi keys become ``symbol=…/date=…`` so per-symbol scans are cheap."""
    if partitions_def is None or key is None:
        return partition_path(asset)
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        dims = partitions_def.get_partition_key_from_str(key).keys_by_dimension
        ordered = dict(sorted(dims.items(), key=lambda kv: kv[0] != "symbol"))
        return partition_path(asset, **ordered)
    return partition_path(asset, **{_dimension(partitions_def): key})


class LakeIOManager(dg.ConfigurableIOManager):
    """Stores polars frames in the lake, one file per partition.

    An asset may return a frame (one partition or unpartitioned), a ``{partition_key: frame}``
    dict (a run over several partitions) or nothing when it wrote the lake itself. Loading one
    partition returns its frame; a partition stored as a folder of files (``consolidated_bars``)
    is read whole. Assets that need many partitions declare a dep and read the lake in chunks.
    """

    lake: LakeResource

    def _path(self, context: dg.InputContext | dg.OutputContext, key: str | None) -> str:
        asset = context.asset_key.path[-1]
        defn = context.asset_partitions_def if context.has_asset_partitions else None
        return partition_keys_to_path(asset, defn, key)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        if isinstance(obj, dict):
            for key, frame in obj.items():
                self.lake.lake.write_parquet(self._path(context, key), frame)
            return
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()}: expected a polars DataFrame, got {type(obj).__name__}"
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
                "declare a dep and read the lake (finance_dag.market_data.consolidate) for many"
            )
        return self._require(self._path(context, keys[0]))

    def _require(self, path: str) -> pl.DataFrame:
        frame = self._read_partition(path)
        if frame is None:
            raise StorageError(f"no file at {self.lake.lake.uri(path)}: materialize it first")
        return frame
