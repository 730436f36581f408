"""Resources of the market-data domain: the bar vendor chain from settings and the registry."""

from finance_dag.core.settings import Settings
from finance_dag.platform.registry import bar_vendors_for


def build_resources(settings: Settings) -> dict[str, object]:
    return {"bar_vendors": bar_vendors_for(settings)}
