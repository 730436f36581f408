"""Real vendor adapters (pure Python, no Dagster): each wraps the vendor's own SDK.

``AlpacaBars``, ``AlphaVantageBars`` and ``YahooBars`` are ``BarSource`` implementations;
``FredMacro`` fetches macro series; ``AlphaVantageFundamentals`` is a ``FundamentalsSource``
(company overview). Rate limits and retries live in ``finance_dag.core.http``.
"""
