"""Real vendor adapters (pure Python, no Dagster): each wraps the vendor's own SDK.

``AlpacaBars``, ``AlphaVantageBars`` and ``YahooBars`` are ``BarSource`` implementations;
``FredMacro`` fetches macro series. Rate limits and retries live in ``finance_dag.core.http``.
"""
