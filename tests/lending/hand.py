"""Hand-computation helpers shared by the factor tests: plain-Python z-scores and comparisons."""

import statistics

import polars as pl
import pytest


def z(values: dict[str, float]) -> dict[str, float]:
    """Cross-sectional z (sample std), clipped at +/-3: the documented rule, in plain Python."""
    mean, sd = statistics.mean(values.values()), statistics.stdev(values.values())
    return {k: max(-3.0, min(3.0, (v - mean) / sd)) for k, v in values.items()}


def values(frame: pl.DataFrame, column: str) -> dict[str, float | None]:
    return dict(zip(frame["symbol"], frame[column], strict=True))


def assert_close(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if value is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(value, abs=1e-12), key
