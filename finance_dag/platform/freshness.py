"""Freshness expectations of the assets a daily schedule keeps current (docs/operations.md, "Freshness").

A schedule ticks at ``M H * * 1-5`` New York and runs its job for the day's session; every
asset it keeps current is expected to be materialised within ``within`` of the tick: a
``FreshnessPolicy.cron`` whose deadline is the tick plus ``within`` and whose window opens at the
tick. The UI shows the state of each (passing, failing once the deadline passes without a
materialisation in the window).

A fixed historical window has nothing to keep current: a domain whose ``END_DATE`` is set expects
no freshness, and a code location whose market-data window is fixed (``FINANCE_DAG_END_DATE``,
as the demo's) replays a history and expects none at all.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from finance_dag.core.calendar import NEW_YORK
from finance_dag.core.settings import DomainSettings, Settings


def shift_cron(cron: str, delta: timedelta) -> str:
    """``cron`` (fixed minute and hour) moved later by ``delta`` (whole minutes, same day)."""
    fields = cron.split()
    minutes = delta.total_seconds() / 60
    if len(fields) != 5 or not (fields[0].isdigit() and fields[1].isdigit()) or minutes != int(minutes):
        raise ValueError(f"cannot shift {cron!r} by {delta}: a fixed 'M H * * days' and whole minutes only")
    total = int(fields[1]) * 60 + int(fields[0]) + int(minutes)
    if not 0 <= total < 24 * 60:
        raise ValueError(f"{cron!r} shifted by {delta} leaves the day")
    return " ".join([str(total % 60), str(total // 60), *fields[2:]])


def after_schedule(
    settings: Settings,
    domain: DomainSettings,
    schedule_cron: str,
    within: timedelta = timedelta(hours=1),
) -> dg.FreshnessPolicy | None:
    """Expect a materialisation within ``within`` of each tick of ``schedule_cron`` (New York);
    None when ``domain``'s window is fixed or the location replays a fixed market-data window."""
    if domain.end_date is not None or settings.market_data.end_date is not None:
        return None
    return dg.FreshnessPolicy.cron(
        deadline_cron=shift_cron(schedule_cron, within), lower_bound_delta=within, timezone=NEW_YORK.key
    )


def freshness_of(assets_def: dg.AssetsDefinition) -> dg.FreshnessPolicy | None:
    """The expectation of ``assets_def``: an asset computed with it in the same scheduled run
    expects the same."""
    return assets_def.specs_by_key[assets_def.key].freshness_policy
