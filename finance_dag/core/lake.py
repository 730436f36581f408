"""The parquet lake: one root, local folder or ``s3://bucket/prefix``, same code path for both.

Paths are ``{root}/{asset}/{key=value}/.../{key=value}.parquet``. Every write is atomic: the
bytes are serialised in memory first, then a local file is renamed into place or an S3 object
is written with a single PUT, so a reader never sees a partial file and re-writing a partition
replaces it exactly. Columns stored as decimals (exact cents) come back as ``Float64`` and
millisecond timestamps as microseconds, so readers always see the canonical types.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import polars as pl

SETTING = "FINANCE_DAG_STORAGE"
TMP_DIR = "_tmp"  # local writes stage here; a killed writer's leftovers are swept by check()
STALE_TMP_SECONDS = 3600


class StorageError(RuntimeError):
    """The storage root is unusable, or a lake file is missing or unreadable."""


@dataclass(frozen=True)
class FileInfo:
    path: str  # relative to the lake root
    size: int
    version: str  # changes whenever the file is rewritten (mtime or ETag)


class Lake:
    """A parquet lake rooted at ``root`` (local path or ``s3://``; ``endpoint_url`` for S3 APIs)."""

    def __init__(self, root: str, endpoint_url: str | None = None) -> None:
        self.root = root.rstrip("/") or root
        self.is_s3 = root.startswith("s3://")
        if self.is_s3:
            import s3fs

            endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
            client_kwargs = {"endpoint_url": endpoint} if endpoint else {}
            # no listings cache: another process (a Celery worker, a re-run) may write a file after we listed
            self.fs = s3fs.S3FileSystem(
                client_kwargs=client_kwargs, skip_instance_cache=True, use_listings_cache=False
            )
            self._base = self.root[len("s3://") :]
            self.endpoint = endpoint
        else:
            from fsspec.implementations.local import LocalFileSystem

            self.fs = LocalFileSystem()
            self._base = os.path.abspath(self.root)
            self.endpoint = None
        self._folders: set[str] = set()

    def __repr__(self) -> str:
        return f"Lake({self.root!r})"

    # ---- checks -------------------------------------------------------------------------
    def check(self) -> None:
        """Fail fast, naming the setting, when the root cannot be written and read back."""
        probe = f"_probe/{uuid.uuid4().hex}"
        where = f"{SETTING}={self.root!r}"
        if self.endpoint:
            where += f" (AWS_ENDPOINT_URL={self.endpoint})"
        try:
            self.write_bytes(probe, b"ok")
            echoed = self.read_bytes(probe)
            self.fs.rm(self._abs(probe))
            self.sweep_stale_tmp()
        except Exception as exc:  # any client error means the root is unusable
            raise StorageError(f"{where} is not usable: {type(exc).__name__}: {exc}") from exc
        if echoed != b"ok":
            raise StorageError(f"{where}: a probe file read back different bytes")

    def sweep_stale_tmp(self, older_than: float = STALE_TMP_SECONDS) -> list[str]:
        """Remove staged files a killed writer left behind (older than ``older_than`` seconds,
        so a concurrent writer's file is never taken); returns what was removed."""
        if self.is_s3:
            return []  # S3 writes are single PUTs: nothing is staged
        folder = self._abs(TMP_DIR)
        removed = []
        cutoff = time.time() - older_than
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            path = os.path.join(folder, name)
            if name.endswith(".tmp") and os.path.getmtime(path) < cutoff:
                os.remove(path)
                removed.append(path)
        return removed

    # ---- bytes --------------------------------------------------------------------------
    def _abs(self, rel: str) -> str:
        return posixpath.join(self._base, rel) if self.is_s3 else os.path.join(self._base, rel)

    def uri(self, rel: str) -> str:
        """A human-readable location of ``rel`` (``s3://…`` or an absolute path)."""
        return f"s3://{self._abs(rel)}" if self.is_s3 else self._abs(rel)

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Atomically put ``data`` at ``rel``: readers see the old file or the new, never half."""
        target = self._abs(rel)
        if self.is_s3:
            try:
                self.fs.pipe_file(target, data)  # one PUT: S3 objects appear whole
            except Exception as exc:  # the client names the object URL-encoded; say which file
                raise StorageError(f"writing {self.uri(rel)} failed: {type(exc).__name__}: {exc}") from exc
            return
        self._makedirs(os.path.dirname(target))
        self._makedirs(self._abs(TMP_DIR))
        tmp = self._abs(f"{TMP_DIR}/{uuid.uuid4().hex}.tmp")  # same filesystem: os.replace is atomic
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise

    def _makedirs(self, folder: str) -> None:
        """Create ``folder`` once per lake object (thousands of writes share a few folders)."""
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self.fs.cat_file(self._abs(rel))
        except FileNotFoundError:
            raise StorageError(f"no file at {self.uri(rel)}") from None

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self._abs(rel))

    def modified(self, rel: str) -> float:
        """When ``rel`` was last written, in epoch seconds (local mtime; S3 ``LastModified``,
        whole seconds on the server's clock)."""
        path = self._abs(rel)
        try:
            if not self.is_s3:
                return os.path.getmtime(path)
            self.fs.invalidate_cache(path)  # another process may have rewritten it
            return self.fs.info(path)["LastModified"].timestamp()
        except FileNotFoundError:
            raise StorageError(f"no file at {self.uri(rel)}") from None

    def delete(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.rm(self._abs(rel), recursive=True)
            self._folders.clear()

    def glob(self, pattern: str) -> list[str]:
        """Paths (relative to the root) matching ``pattern``, sorted."""
        base = self._base.replace(os.sep, "/")
        self.fs.invalidate_cache(posixpath.dirname(self._abs(pattern.split("*", 1)[0])))
        return sorted(posixpath.relpath(path, base) for path in self.fs.glob(self._abs(pattern)))

    def list_files(self, rel_dir: str, suffix: str = ".parquet") -> list[FileInfo]:
        """Files under ``rel_dir`` (recursively) ending in ``suffix``, sorted by path."""
        base = self._abs(rel_dir)
        self.fs.invalidate_cache(base)  # other processes write the lake: never list from a cache
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return []
        out = []
        for path, info in found.items():
            if not path.endswith(suffix):
                continue
            rel = posixpath.relpath(path, self._base.replace(os.sep, "/"))
            version = str(info.get("ETag") or info.get("mtime") or info.get("LastModified"))
            out.append(FileInfo(rel, int(info.get("size") or 0), version))
        return sorted(out, key=lambda f: f.path)

    # ---- parquet ------------------------------------------------------------------------
    def write_parquet(
        self,
        rel: str,
        frame: pl.DataFrame,
        metadata: Mapping[str, str] | None = None,
        encodings: Mapping[str, str] | None = None,
        compression_level: int = 9,
    ) -> int:
        """Write ``frame`` as zstd parquet at ``rel`` atomically; returns bytes written. Files
        written once and read often (the research layout) pay for a higher ``compression_level``."""
        import pyarrow.parquet as pq

        table = frame.to_arrow()
        buffer = io.BytesIO()
        with pq.ParquetWriter(
            buffer,
            table.schema,
            compression="zstd",
            compression_level=compression_level,
            store_decimal_as_integer=True,
            use_dictionary=[c for c in table.column_names if c not in (encodings or {})],
            column_encoding=dict(encodings) if encodings else None,
            write_statistics=False,  # one row group per file: statistics would prune nothing
            data_page_version="2.0",
            store_schema=False,  # the arrow schema blob costs ~1 KB a file; parquet types suffice
        ) as writer:
            writer.write_table(table)
            if metadata:
                writer.add_key_value_metadata(dict(metadata))
        data = buffer.getvalue()
        self.write_bytes(rel, data)
        return len(data)

    def write_csv_beside(self, parquet_rel: str, frame: pl.DataFrame) -> str:
        """An export for spreadsheets: ``frame`` as CSV beside ``parquet_rel`` (same name, ``.csv``),
        written atomically; returns its path."""
        rel = parquet_rel.removesuffix(".parquet") + ".csv"
        self.write_bytes(rel, frame.write_csv().encode())
        return rel

    def read_parquet(self, rel: str) -> pl.DataFrame:
        """Read one parquet file in canonical types; the error names the file on failure."""
        try:
            if self.is_s3:
                frame = pl.read_parquet(io.BytesIO(self.read_bytes(rel)))
            else:
                frame = pl.read_parquet(self._abs(rel))
        except (FileNotFoundError, StorageError):
            raise StorageError(f"no file at {self.uri(rel)}") from None
        except Exception as exc:
            raise StorageError(f"unreadable parquet at {self.uri(rel)}: {exc}") from exc
        return canonical_types(frame)

    def read_many(self, rels: Iterable[str]) -> pl.DataFrame:
        """Concatenate several files (diagonally: missing columns become null)."""
        frames = [self.read_parquet(rel) for rel in rels]
        return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()

    def _footer(self, rel: str):
        import pyarrow.parquet as pq

        with self.fs.open(self._abs(rel), "rb") as handle:
            return pq.read_metadata(handle)

    def read_metadata(self, rel: str) -> dict[str, str]:
        """The key-value metadata stored with a parquet file (without reading its data)."""
        raw = self._footer(rel).metadata or {}
        return {k.decode(): v.decode() for k, v in raw.items()}

    def row_count(self, rel: str) -> int:
        """Rows of a parquet file, from its footer (without reading its data)."""
        return self._footer(rel).num_rows


def canonical_types(frame: pl.DataFrame) -> pl.DataFrame:
    """Decimals to Float64 and any timestamp to microseconds, as every reader expects."""
    casts = {}
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Decimal):
            casts[name] = pl.Float64
        elif isinstance(dtype, pl.Datetime) and dtype.time_unit != "us":
            casts[name] = pl.Datetime("us", dtype.time_zone)
    return frame.cast(casts) if casts else frame


def partition_path(asset: str, **keys: str) -> str:
    """``asset/k1=v1/k2=v2.parquet``: the lake path of one partition (hive-style keys)."""
    parts = [f"{k}={v}" for k, v in keys.items()]
    if not parts:
        return f"{asset}/{asset}.parquet"
    return posixpath.join(asset, *parts) + ".parquet"
