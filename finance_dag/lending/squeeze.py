"""SSR v4, the short-squeeze score: a documented weighted sum of standardised components.

For each session, per name (inputs: the session's core factors, the name's close-to-close
return of the session and the crowd buzz of the extended factors):

    SSR_v4 = sum_c w_c * z_c / sum_c w_c     over the components c present for the name

with the components and weights

    sim     0.25  z of short-interest momentum (SIM, already a cross-sectional z)
    bcs     0.30  borrow-cost shock (BCS, a per-name z), clipped to [-Z_CAP, Z_CAP]
    upi     0.25  utilisation persistence (UPI, 0..1), cross-sectional z
    uptick  0.10  the last session's return, cross-sectional z (price confirmation)
    buzz    0.10  crowd buzz pulse (the extended factor ``crowd_buzz``, already a
                  cross-sectional z of the social-mention velocity)

A missing component (null for the name, or no input for the day, e.g. no mention counts)
drops out and the weights of the rest are rescaled, so a score is never built from zeros; the
``components`` column says which ones served. Each component's contribution
``w_c * z_c / sum w`` is kept, so a score is explained term by term, and ``reason`` words the
largest contributions for the top candidates.
"""

from __future__ import annotations

import polars as pl

from finance_dag.lending.factors import Z_CAP, zscore

WEIGHTS: dict[str, float] = {"sim": 0.25, "bcs": 0.30, "upi": 0.25, "uptick": 0.10, "buzz": 0.10}
LABELS = {
    "sim": "short-interest momentum",
    "bcs": "borrow-cost shock",
    "upi": "utilisation persistence",
    "uptick": "price uptick",
    "buzz": "social buzz",
}


def squeeze_scores(
    factors: pl.DataFrame, last_return: pl.DataFrame, buzz: pl.DataFrame | None = None
) -> pl.DataFrame:
    """SSR v4 per name and session: ``date``, ``symbol``, ``ssr_v4``, one ``<component>_z`` and
    ``<component>_contrib`` column per component, ``components`` (how many served) and
    ``reason``; sorted by date, then best first. One session or many: every cross-sectional z
    is taken within its date.

    ``factors``: core factors (``date``, ``symbol``, ``sim``, ``bcs``, ``upi``, ...);
    ``last_return``: ``date``, ``symbol``, ``return`` (close-to-close of the session);
    ``buzz``: ``date``, ``symbol``, ``crowd_buzz`` (the extended factors) or None when there are
    none.
    """
    keys = ["date", "symbol"]
    frame = factors.select(*keys, "sim", "bcs", "upi").join(
        last_return.select(*keys, "return"), on=keys, how="left"
    )
    if buzz is not None:
        frame = frame.join(buzz.select(*keys, "crowd_buzz"), on=keys, how="left")
    else:
        frame = frame.with_columns(crowd_buzz=pl.lit(None, pl.Float64))
    z = frame.sort(keys).with_columns(  # a fixed order: sums are identical whatever the input order
        sim_z=pl.col("sim"),
        bcs_z=pl.col("bcs").clip(-Z_CAP, Z_CAP),
        upi_z=zscore(pl.col("upi")).over("date"),
        uptick_z=zscore(pl.col("return")).over("date"),
        buzz_z=pl.col("crowd_buzz"),
    )
    served = pl.sum_horizontal(
        pl.col(f"{c}_z").is_not_null().cast(pl.Float64) * w for c, w in WEIGHTS.items()
    )
    scored = z.with_columns(_weight=served).with_columns(
        **{
            f"{c}_contrib": pl.when(pl.col("_weight") > 0).then(
                pl.col(f"{c}_z").fill_null(0.0) * w / pl.col("_weight")
            )
            for c, w in WEIGHTS.items()
        },
        components=pl.sum_horizontal(pl.col(f"{c}_z").is_not_null().cast(pl.Int64) for c in WEIGHTS),
    )
    scored = scored.with_columns(
        ssr_v4=pl.when(pl.col("_weight") > 0).then(pl.sum_horizontal(f"{c}_contrib" for c in WEIGHTS))
    )
    return (
        _with_reason(scored)
        .select(
            *keys,
            "ssr_v4",
            *(f"{c}_z" for c in WEIGHTS),
            *(f"{c}_contrib" for c in WEIGHTS),
            "components",
            "reason",
        )
        .sort(["date", "ssr_v4", "symbol"], descending=[False, True, False], nulls_last=True)
    )


def _with_reason(scored: pl.DataFrame) -> pl.DataFrame:
    """Adds ``reason``: the two largest positive contributions in words, e.g. ``borrow-cost
    shock 2.9 sd, utilisation persistence 1.4 sd`` ("" when none is positive; a tie goes to the
    component listed first). Column arithmetic in stages, no per-row lists: fast on a year."""
    contrib = {c: pl.col(f"{c}_contrib") for c in WEIGHTS}

    def largest(values: dict[str, pl.Expr]) -> pl.Expr:
        """The name of the component holding the largest positive value (null when none)."""
        top = pl.max_horizontal(*values.values())
        return pl.coalesce(pl.when((v == top) & (top > 0)).then(pl.lit(c)) for c, v in values.items())

    def words(name: str) -> pl.Expr:
        return pl.coalesce(
            pl.when(pl.col(name) == c).then(pl.format(f"{LABELS[c]} {{}} sd", pl.col(f"{c}_z").round(1)))
            for c in WEIGHTS
        )

    ranked = scored.with_columns(_first=largest(contrib))
    ranked = ranked.with_columns(
        _second=largest({c: pl.when(pl.col("_first") != c).then(v) for c, v in contrib.items()})
    )
    reason = pl.concat_str([words("_first"), words("_second")], separator=", ", ignore_nulls=True)
    return ranked.with_columns(reason=reason.fill_null("")).drop("_first", "_second")
