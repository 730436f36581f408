"""Position sizing and risk control: turn a strategy's position path into a weights path.

Pure numpy, no Dagster. Inputs and timing follow :mod:`finance_dag.strategies.walkforward`:
``positions`` is T sessions × N symbols in [-1, 1] (NaN = flat), row t taken at t's close and held
over t → t+1; ``returns`` is T × N simple returns, row t = ``close[t] / close[t-1] - 1`` (NaN or
±inf = unknown, row 0 unknown). The output ``w`` is T × N signed weights (fractions of capital), row
t held over t → t+1, so it earns ``Σ_i w[t, i] · r[t+1, i]`` (an unknown return counts 0).

**No look-ahead**: every statistic used for row t reads returns rows ≤ t (and positions rows ≤ t)
only. Steps, in order (each optional step is off at its default):

1. **Base scheme** (gross exposure Σ|w| ≤ 1, a flat symbol leaves its budget in cash):

   - ``equal``: ``w = p / N``, the default sizing of the walk-forward (an equal risk budget).
   - ``risk_parity``: ``w_i = p_i · (1/σ_i) / Σ_j (1/σ_j)``, the sum over every symbol with a
     σ at t (held or not), so a symbol's budget shrinks with its volatility. ``σ_i`` at t is the
     sample std (ddof=1) of the finite returns among rows ``t-vol_window+1 .. t``; it exists when
     at least ``max(2, ⌈vol_window/2⌉)`` of them are finite (a gap does not blank a name for a
     whole window) and σ > 1e-12. A symbol without σ gets weight 0.

2. **Correlation diversification** (``max_correlation`` = c > 0): ρ is the pairwise correlation of
   the returns over rows ``r-corr_window+1 .. r`` (pairwise-complete, defined when at least
   ``max(2, ⌈corr_window/2⌉)`` rows have both returns and both have a variance), computed at the
   refresh rows ``r = 0, refresh, 2·refresh, …`` and used for rows ``r .. r+refresh-1``; an
   undefined ρ counts 0. A held name i (non-zero base weight, sign ``s_i``) is divided by
   ``1 + Σ_{j≠i held} max(s_i·s_j·ρ_ij − c, 0)``. The sign product is a deliberate refinement:
   two names are *crowded* when their positions make the same bet — long/long (or short/short)
   on positively correlated names, or long/short on negatively correlated ones — while a long/short
   pair of correlated names is a hedge (e.g. a pair trade) and is not penalised. Weights only shrink.

3. **Sector limit** (``sector_limit`` > 0): per row, a sector whose gross weight ``Σ|w|`` exceeds
   the limit is scaled by ``limit / gross`` (to exactly the limit); other sectors are unchanged.
   ``sectors`` gives one label per symbol; a missing label (None, NaN, "") puts the symbol in one
   shared ``"UNCLASSIFIED"`` group.

4. **Factor constraint** (``factor_limit`` = L, not None): the risk domain's factor exposures
   ``B`` (N × K, e.g. :meth:`finance_dag.risk.model.RiskModel.exposure_matrix`, or T × N × K with
   row t the exposures as of t) used as a constraint ``|Σ_i w_i B_ik| ≤ L`` for every factor k.
   A symbol whose exposure row has a NaN is excluded: its weight is forced to 0. A row that
   violates the limit gets the minimum-norm correction of its *held* names H (non-zero weight):
   ``w_H ← w_H − B_H (B_Hᵀ B_H)⁺ (B_Hᵀ w_H − clip(B_Hᵀ w_H, −L, L))``, exact for the clipped
   target when ``B_H`` has full column rank. Restricting the correction to held names keeps the
   sizing from opening positions the strategy did not take (possibly in names without data). If
   the row still violates by more than 1e-9 (rank-deficient ``B_H``, e.g. fewer held names than
   factors), it is scaled by ``min_k L / |Bᵀw|_k`` so the limit holds. A feasible row is unchanged.
   The correction may flip a sign or raise the gross exposure; it runs after the sector limit.

5. **Book leverage** (``vol_target`` > 0 and/or ``kelly_fraction`` > 0), from the returns of the
   pre-leverage book (steps 1-4), ``b[s] = Σ_i w[s-1, i] · r[s, i]`` for s ≥ 1:

   - vol target: ``L_t = vol_target / (σ_b · √252)`` with σ_b the std (ddof=1) of
     ``b[t-vol_window+1 .. t]``; **L = 1 (unlevered base book)** until vol_window book returns
     exist (t ≥ vol_window) or while σ_b ≤ 1e-12 (e.g. a book flat all window): before the risk can
     be measured the book trades at its base size, as the default sizing does.
   - Kelly: ``L_t = clip(kelly_fraction · μ / σ², 0, kelly_cap)`` with μ, σ² the mean and variance
     (ddof=1) of ``b[t-kelly_window+1 .. t]``; L = 0 before kelly_window book returns exist or
     while σ² ≤ 1e-24 (no evidence, no bet).
   - Both on: ``L = min(L_vol, L_kelly)`` — not the product: each is a leverage of the same
     pre-leverage book, and the smaller respects both the risk target and the Kelly bet (the
     product can bet more than Kelly says is optimal).
   - ``L ≤ max_leverage`` (only when a leverage option is on); ``w ← L_t · w``.

6. **Max-drawdown de-risk** (``max_drawdown`` = D > 0), sequential on the final book: equity
   ``E_0 = 1``, ``E_t = E_{t-1} · (1 + Σ_i w_final[t-1, i] · r[t, i])`` (the de-risked weights
   themselves, so recovery is at the reduced size), drawdown ``dd_t = 1 − E_t / max_{s≤t} E_s``.
   At t's close: a full-size book with ``dd_t ≥ D`` is de-risked from row t on (rows multiplied by
   ``derisk_to``); a de-risked book with ``dd_t ≤ D/2`` is back to full size from row t on
   (comparisons with a 1e-12 tolerance). A wiped-out book (E ≤ 0) stays de-risked;
   ``derisk_to = 0`` freezes the equity, so the book never trades again after a breach.

:class:`Sizer` computes the per-symbol statistics (σ, correlations, sector groups, exposures) once
for a returns panel and sizes many position paths; :func:`size_positions` is the one-off form.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

TRADING_DAYS = 252
UNCLASSIFIED = "UNCLASSIFIED"
_TINY_SIGMA = 1e-12  # a std at or below this is treated as zero (no measurable risk)
_CHECK_TOL = 1e-12  # tolerance of the limit and drawdown comparisons
_FACTOR_TOL = 1e-9  # the factor limit holds up to this after the correction
_CHUNK = 1 << 21  # elements per chunk of the rolling windows (bounds the temporaries' memory)


def _integer(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"Sizing.{name} must be an integer ≥ {minimum}, got {value!r}")


def _real(
    name: str, value: object, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"Sizing.{name} must be a finite number in {lo}{low}, {high}{hi}, got {value!r}")


@dataclass(frozen=True)
class Sizing:
    """Options of :class:`Sizer` (see the module docstring for the exact rules); every optional
    step is off at its default, so ``Sizing()`` is the walk-forward's ``p / N``."""

    scheme: Literal["equal", "risk_parity"] = "equal"
    vol_window: int = 63
    max_correlation: float = 0.0
    corr_window: int = 63
    refresh: int = 21
    sector_limit: float = 0.0
    factor_limit: float | None = None
    vol_target: float = 0.0
    kelly_fraction: float = 0.0
    kelly_cap: float = 1.0
    kelly_window: int = 126
    max_leverage: float = 2.0
    max_drawdown: float = 0.0
    derisk_to: float = 0.5

    def __post_init__(self) -> None:
        """Reject out-of-range options with a message naming the field and its value."""
        if self.scheme not in ("equal", "risk_parity"):
            raise ValueError(f"Sizing.scheme must be 'equal' or 'risk_parity', got {self.scheme!r}")
        for name in ("vol_window", "corr_window", "kelly_window"):
            _integer(name, getattr(self, name), 2)
        _integer("refresh", self.refresh, 1)
        _real("max_correlation", self.max_correlation, 0.0, 1.0, high_open=True)
        _real("sector_limit", self.sector_limit, 0.0, math.inf, high_open=True)
        if self.factor_limit is not None:
            _real("factor_limit", self.factor_limit, 0.0, math.inf, high_open=True)
        _real("vol_target", self.vol_target, 0.0, math.inf, high_open=True)
        _real("kelly_fraction", self.kelly_fraction, 0.0, 1.0)
        _real("kelly_cap", self.kelly_cap, 0.0, math.inf, low_open=True, high_open=True)
        _real("max_leverage", self.max_leverage, 0.0, math.inf, low_open=True, high_open=True)
        _real("max_drawdown", self.max_drawdown, 0.0, 1.0, high_open=True)
        _real("derisk_to", self.derisk_to, 0.0, 1.0, high_open=True)


class SizedPath(NamedTuple):
    """The steps of one sizing: ``weights`` (final, T × N), ``pre_leverage`` (after steps 1-4),
    ``leverage`` (T, the book leverage of step 5, 1 when off) and ``derisk`` (T, the drawdown
    multiplier of step 6, 1 at full size)."""

    weights: np.ndarray
    pre_leverage: np.ndarray
    leverage: np.ndarray
    derisk: np.ndarray


def _rolling_moments(x: np.ndarray, window: int, min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing mean and variance (ddof=1) of each column of ``x`` (T × M) over rows
    ``t-window+1 .. t`` (fewer at the top), from the finite values only; NaN where fewer than
    ``max(min_count, 2)`` are finite. Two passes per window (no cumulative-sum cancellation), so a
    constant window has a variance of exactly 0 up to rounding of its mean."""
    t_len, m = x.shape
    padded = np.vstack([np.full((window - 1, m), np.nan), x])
    view = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)  # T × M × window
    mean = np.full((t_len, m), np.nan)
    var = np.full((t_len, m), np.nan)
    step = max(1, _CHUNK // max(1, m * window))
    for start in range(0, t_len, step):
        block = view[start : start + step]
        finite = np.isfinite(block)
        count = finite.sum(axis=-1)
        mu = np.where(finite, block, 0.0).sum(axis=-1) / np.maximum(count, 1)
        dev = np.where(finite, block - mu[..., None], 0.0)
        ss = (dev * dev).sum(axis=-1)
        ok = count >= max(min_count, 2)
        mean[start : start + step] = np.where(ok, mu, np.nan)
        var[start : start + step] = np.where(ok, ss / np.maximum(count - 1, 1), np.nan)
    return mean, var


def _correlation(window: np.ndarray, min_count: int) -> np.ndarray:
    """Pairwise-complete correlation (N × N) of the columns of ``window`` (rows × N, NaN unknown);
    NaN where fewer than ``min_count`` rows have both values or a variance is ≤ 1e-24 · n."""
    finite = np.isfinite(window)
    m = finite.astype(float)
    count = m.sum(axis=0)
    centre = np.where(count > 0, np.where(finite, window, 0.0).sum(axis=0) / np.maximum(count, 1), 0.0)
    x = np.where(finite, window - centre, 0.0)  # a shift leaves every pairwise correlation unchanged
    n = m.T @ m
    sx = x.T @ m  # sx[i, j] = Σ over rows where j is known of x_i
    sxx = (x * x).T @ m
    sxy = x.T @ x
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = sxy - sx * sx.T / n
        var_i = sxx - sx * sx / n
        var_j = var_i.T
        rho = cov / np.sqrt(var_i * var_j)
    ok = (n >= min_count) & (var_i > 1e-24 * n) & (var_j > 1e-24 * n)
    return np.where(ok, np.clip(rho, -1.0, 1.0), np.nan)


def _labels(sectors: Sequence[object] | np.ndarray, n: int) -> np.ndarray:
    """One-hot sector membership (N × S); a missing label joins the ``UNCLASSIFIED`` group."""
    labels = list(sectors)
    if len(labels) != n:
        raise ValueError(f"Sizer: sectors must have one label per symbol ({n}), got {len(labels)}")
    clean = [
        UNCLASSIFIED
        if lab is None or (isinstance(lab, float) and math.isnan(lab)) or (isinstance(lab, str) and not lab)
        else str(lab)
        for lab in labels
    ]
    groups = sorted(set(clean))
    index = {g: k for k, g in enumerate(groups)}
    onehot = np.zeros((n, len(groups)))
    onehot[np.arange(n), [index[c] for c in clean]] = 1.0
    return onehot


class Sizer:
    """Sizes position paths against one returns panel: the per-symbol statistics (σ for risk
    parity, the refreshed correlations, sector groups, exposures) are computed once here, so each
    call only does the position-dependent work (vectorised; the drawdown rule loops over T)."""

    def __init__(
        self,
        returns: np.ndarray,
        sizing: Sizing | None = None,
        sectors: Sequence[object] | np.ndarray | None = None,
        exposures: np.ndarray | None = None,
    ) -> None:
        self.sizing = sizing = Sizing() if sizing is None else sizing
        r = np.asarray(returns, dtype=float)
        if r.ndim != 2 or 0 in r.shape:
            raise ValueError(f"Sizer: returns must be T×N with T, N ≥ 1, got shape {r.shape}")
        self.shape = t_len, n = r.shape
        self._r0 = np.where(np.isfinite(r), r, 0.0)  # an unknown return counts 0 in the book
        r = np.where(np.isfinite(r), r, np.nan)

        self._share: np.ndarray | None = None  # None: the equal scheme, w = p / N
        if sizing.scheme == "risk_parity":
            _, var = _rolling_moments(r, sizing.vol_window, math.ceil(sizing.vol_window / 2))
            sigma = np.sqrt(var)
            inv = np.where(
                np.isfinite(sigma) & (sigma > _TINY_SIGMA), 1.0 / np.where(sigma > 0, sigma, 1.0), 0.0
            )
            total = inv.sum(axis=1, keepdims=True)
            self._share = np.where(total > 0, inv / np.where(total > 0, total, 1.0), 0.0)

        self._blocks: list[tuple[int, int, np.ndarray, np.ndarray]] = []
        if sizing.max_correlation > 0:
            c, w = sizing.max_correlation, sizing.corr_window
            for start in range(0, t_len, sizing.refresh):
                rho = _correlation(r[max(0, start - w + 1) : start + 1], max(2, math.ceil(w / 2)))
                rho = np.nan_to_num(rho, nan=0.0)
                np.fill_diagonal(rho, 0.0)
                same, opposite = np.maximum(rho - c, 0.0), np.maximum(-rho - c, 0.0)
                if same.any() or opposite.any():
                    self._blocks.append((start, min(start + sizing.refresh, t_len), same, opposite))

        self._groups: np.ndarray | None = None
        if sizing.sector_limit > 0:
            if sectors is None:
                raise ValueError("Sizer: sizing.sector_limit > 0 needs sectors (one label per symbol)")
            self._groups = _labels(sectors, n)

        self._exposures: np.ndarray | None = None
        self._excluded: np.ndarray | None = None
        if sizing.factor_limit is not None:
            if exposures is None:
                raise ValueError("Sizer: sizing.factor_limit needs exposures (N×K or T×N×K)")
            b = np.asarray(exposures, dtype=float)
            if b.ndim == 2 and b.shape[0] == n:
                b = np.broadcast_to(b, (t_len, *b.shape))
            if b.ndim != 3 or b.shape[:2] != (t_len, n) or b.shape[2] == 0:
                raise ValueError(
                    f"Sizer: exposures must be N×K or T×N×K for N={n}, T={t_len}, got shape {b.shape}"
                )
            self._excluded = ~np.isfinite(b).all(axis=2)  # T × N
            self._exposures = np.where(self._excluded[..., None], 0.0, b)

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """Weights (T × N, row t held over t → t+1) of the position path ``positions``."""
        return self.explain(positions).weights

    def explain(self, positions: np.ndarray) -> SizedPath:
        """The weights of ``positions`` with the intermediate steps (for diagnostics and tests)."""
        p = np.asarray(positions, dtype=float)
        if p.shape != self.shape:
            raise ValueError(f"Sizer: positions have shape {p.shape}, returns {self.shape}")
        p = np.nan_to_num(p, nan=0.0, posinf=np.inf, neginf=-np.inf)
        if not np.all(np.abs(p) <= 1.0 + 1e-9):
            raise ValueError("Sizer: positions must lie in [-1, 1] (NaN = flat)")
        s = self.sizing
        w = p / self.shape[1] if self._share is None else p * self._share
        if self._blocks:
            w = self._diversify(w)
        if self._groups is not None:
            w = self._sector_limit(w, s.sector_limit)
        if s.factor_limit is not None:
            w = self._factor_limit(w, float(s.factor_limit))
        pre = w
        book = np.zeros(self.shape[0])
        book[1:] = (pre[:-1] * self._r0[1:]).sum(axis=1)
        leverage = self._leverage(book)
        derisk = self._derisk(book, leverage)
        return SizedPath((leverage * derisk)[:, None] * pre, pre, leverage, derisk)

    def _diversify(self, w: np.ndarray) -> np.ndarray:
        """Step 2: divide each held name by 1 + its same-bet correlation excess over held names."""
        sign = np.sign(w)
        long, short = (sign > 0).astype(float), (sign < 0).astype(float)
        penalty = np.zeros_like(w)
        for start, stop, same, opposite in self._blocks:
            lo, sh = long[start:stop], short[start:stop]
            if not (lo.any() or sh.any()):
                continue
            as_long = lo @ same + sh @ opposite  # crowding of a long name
            as_short = sh @ same + lo @ opposite  # crowding of a short name
            penalty[start:stop] = np.where(
                sign[start:stop] > 0, as_long, np.where(sign[start:stop] < 0, as_short, 0.0)
            )
        return w / (1.0 + penalty)

    def _sector_limit(self, w: np.ndarray, limit: float) -> np.ndarray:
        """Step 3: scale each sector whose gross weight exceeds ``limit`` down to it."""
        groups = self._groups
        assert groups is not None
        gross = np.abs(w) @ groups  # T × S
        scale = np.where(gross > limit, limit / np.where(gross > 0, gross, 1.0), 1.0)
        return w * (scale @ groups.T)

    def _factor_limit(self, w: np.ndarray, limit: float) -> np.ndarray:
        """Step 4: minimum-norm correction of the held names on the rows violating ``|Bᵀw| ≤ L``."""
        b, excluded = self._exposures, self._excluded
        assert b is not None and excluded is not None
        w = np.where(excluded, 0.0, w)
        x = np.einsum("tn,tnk->tk", w, b)
        rows = np.flatnonzero((np.abs(x) > limit + _CHECK_TOL).any(axis=1))
        if rows.size == 0:
            return w
        w = w.copy()
        held = (w[rows] != 0).astype(float)
        bh = held[..., None] * b[rows]  # V × N × K, rows of unheld names zeroed
        gram = np.einsum("vnk,vnl->vkl", bh, bh)
        excess = x[rows] - np.clip(x[rows], -limit, limit)
        coef = np.einsum("vkl,vl->vk", np.linalg.pinv(gram, hermitian=True), excess)
        w[rows] -= np.einsum("vnk,vk->vn", bh, coef)
        after = np.abs(np.einsum("vn,vnk->vk", w[rows], b[rows])).max(axis=1)
        bad = after > limit + _FACTOR_TOL
        if bad.any():  # rank-deficient held exposures: scale the row into the limit
            w[rows[bad]] *= (limit / after[bad])[:, None]
        return w

    def _leverage(self, book: np.ndarray) -> np.ndarray:
        """Step 5: the book leverage per row from the pre-leverage book's returns (1 when off)."""
        s = self.sizing
        t_len = book.shape[0]
        if s.vol_target <= 0 and s.kelly_fraction <= 0:
            return np.ones(t_len)
        series = book.copy()
        series[0] = np.nan  # nothing was held before row 0: no book return
        leverage = np.full(t_len, np.inf)
        if s.vol_target > 0:
            _, var = _rolling_moments(series[:, None], s.vol_window, s.vol_window)
            sigma = np.sqrt(var[:, 0])
            ok = np.isfinite(sigma) & (sigma > _TINY_SIGMA)
            target = s.vol_target / (np.where(ok, sigma, 1.0) * math.sqrt(TRADING_DAYS))
            leverage = np.minimum(leverage, np.where(ok, target, 1.0))
        if s.kelly_fraction > 0:
            mean, var = (v[:, 0] for v in _rolling_moments(series[:, None], s.kelly_window, s.kelly_window))
            ok = np.isfinite(var) & (var > _TINY_SIGMA**2)
            kelly = np.clip(s.kelly_fraction * mean / np.where(ok, var, 1.0), 0.0, s.kelly_cap)
            leverage = np.minimum(leverage, np.where(ok, kelly, 0.0))
        return np.minimum(leverage, s.max_leverage)

    def _derisk(self, book: np.ndarray, leverage: np.ndarray) -> np.ndarray:
        """Step 6: the drawdown multiplier per row, tracking the final book's equity."""
        s = self.sizing
        t_len = book.shape[0]
        out = np.ones(t_len)
        if s.max_drawdown <= 0:
            return out
        levered = np.zeros(t_len)
        levered[1:] = leverage[:-1] * book[1:]  # return on t of the levered, not yet de-risked book
        limit, recover, low = s.max_drawdown, s.max_drawdown / 2, s.derisk_to
        equity = peak = 1.0
        derisked = False
        for t, g in enumerate(levered.tolist()):
            equity = max(equity * (1.0 + (low if derisked else 1.0) * g), 0.0)  # row t-1's size
            peak = max(peak, equity)
            drawdown = 1.0 - equity / peak
            if not derisked and drawdown >= limit - _CHECK_TOL:
                derisked = True
            elif derisked and equity > 0 and drawdown <= recover + _CHECK_TOL:
                derisked = False
            out[t] = low if derisked else 1.0
        return out


def size_positions(
    positions: np.ndarray,
    returns: np.ndarray,
    sizing: Sizing | None = None,
    sectors: Sequence[object] | np.ndarray | None = None,
    exposures: np.ndarray | None = None,
) -> np.ndarray:
    """Weights (T × N) of one position path: ``Sizer(returns, sizing, sectors, exposures)(positions)``;
    use a :class:`Sizer` to size many paths against the same returns."""
    return Sizer(returns, sizing, sectors, exposures)(positions)
