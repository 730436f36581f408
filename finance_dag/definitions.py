"""The finance_dag code location: every domain's definitions, merged, with the platform's policies.

``build_definitions(settings)`` builds everything from one ``Settings`` value: each package
under ``finance_dag/defs/`` contributes ``build_defs(settings)`` (found by name, so adding a
domain edits nothing here), the platform adds the lake and its IO manager, and
``apply_policies`` gives every asset its owners and domain tag. ``defs`` is the code location
for the environment's settings (``FINANCE_DAG_*``), read once here.
"""

import importlib
import pkgutil

import dagster as dg

from finance_dag import defs as defs_package
from finance_dag.core.settings import Settings, load_settings
from finance_dag.platform.alerts import alert_resources, build_alert_sensors
from finance_dag.platform.contract import DOMAIN_TAG, OWNERS
from finance_dag.platform.executors import executor_for
from finance_dag.platform.recovery import build_recovery_sensor
from finance_dag.platform.registry import vendor_resources
from finance_dag.platform.storage import LakeIOManager, LakeResource


def domains() -> list[str]:
    """The domain packages under ``finance_dag/defs/``, in name order."""
    return sorted(m.name for m in pkgutil.iter_modules(defs_package.__path__) if m.ispkg)


def platform_resources(settings: Settings) -> dict[str, object]:
    """Resources every domain shares: the lake, its IO manager, and the environment's vendors."""
    lake = LakeResource(root=settings.storage)
    return {"lake": lake, "io_manager": LakeIOManager(lake=lake), **vendor_resources(settings)}


def apply_policies(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Cross-cutting policy: owners, and the domain (= group) as a tag, on every asset."""
    return spec.replace_attributes(
        owners=spec.owners or list(OWNERS),
        tags={DOMAIN_TAG: spec.group_name or "default", **spec.tags},
    )


def build_definitions(settings: Settings, **resource_overrides: object) -> dg.Definitions:
    """The code location for ``settings``; tests and notebooks may override single resources."""
    merged = dg.Definitions.merge(
        *(
            importlib.import_module(f"{defs_package.__name__}.{name}").build_defs(settings)
            for name in domains()
        ),
        dg.Definitions(resources=platform_resources(settings)),
    )
    location = dg.Definitions(
        assets=merged.assets,
        asset_checks=merged.asset_checks,
        jobs=merged.jobs,
        schedules=merged.schedules,
        sensors=[
            *(merged.sensors or []),
            build_recovery_sensor(merged.assets or []),
            *build_alert_sensors(settings),
        ],
        resources={**(merged.resources or {}), **alert_resources(settings), **resource_overrides},
        executor=executor_for(settings),
    )
    return location.map_asset_specs(func=apply_policies)


defs = build_definitions(load_settings())
