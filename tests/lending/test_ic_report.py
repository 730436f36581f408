"""The factor IC report, measured on the lake's own prices, finds what the simulated feed planted
(fee shocks under high utilisation) and nothing where nothing was planted."""

from datetime import date

import dagster as dg

from finance_dag.core.universe import LENDING_SYMBOLS
from finance_dag.definitions import build_definitions
from finance_dag.platform.partitions import session_range_tags
from tests.support import settings_for

FIRST, LAST = date(2023, 1, 3), date(2023, 8, 31)


def test_the_ic_report_finds_the_planted_signals_and_only_those(tmp_path, instance):
    settings = settings_for(
        str(tmp_path / "lake"),
        LENDING_UNIVERSE=",".join(LENDING_SYMBOLS[:400]),
        LENDING_START_DATE="2022-11-01",
    )
    defs = build_definitions(settings)
    job = defs.resolve_job_def("lending_job")
    assert job.execute_in_process(instance=instance, tags=session_range_tags(FIRST, LAST)).success
    summary = defs.load_asset_value("factor_ic_report", instance=instance)
    five = {row["factor"]: row for row in summary.filter(summary["period"] == 5).iter_rows(named=True)}
    assert five["bcs"]["mean_ic"] > 0.01 and five["bcs"]["t_stat"] > 3, five["bcs"]
    assert five["upi"]["mean_ic"] > 0.01 and five["upi"]["t_stat"] > 3, five["upi"]
    # nothing planted: the core factors of unrelated processes, and the extended factors built on
    # inputs that never touch prices (mentions, ETF flows)
    for unrelated in ("sim", "dtc_z", "lpf", "crowd_buzz", "etf_flow_pressure"):
        assert abs(five[unrelated]["t_stat"]) < 3, five[unrelated]
    event = instance.get_latest_materialization_event(dg.AssetKey("factor_ic_report")).asset_materialization
    assert event.metadata["rolling_ic"].value.startswith("![rolling IC](data:image/png;base64,")
