"""finance_dag.strategies.sizing: each step against a hand computation, no look-ahead for every option,
and validation messages that name the field."""

import math

import numpy as np
import pytest

from finance_dag.strategies.sizing import Sizer, Sizing, size_positions


def test_equal_is_p_over_n_with_nan_flat():
    p = np.array([[1.0, np.nan, -0.5, 0.0], [np.nan, np.nan, np.nan, np.nan], [0.25, -1.0, 1.0, 0.5]])
    r = np.full(p.shape, 0.01)
    expected = np.array([[0.25, 0.0, -0.125, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0625, -0.25, 0.25, 0.125]])
    np.testing.assert_array_equal(size_positions(p, r), expected)


def test_risk_parity_splits_the_budget_by_inverse_volatility():
    # A, B, C alternate ±1 %, ±2 %, ±4 %: σ in the ratio 1 : 2 : 4 on every window, so the shares are
    # (1, 1/2, 1/4) / 1.75 = 4/7, 2/7, 1/7. D has no returns: no σ, weight 0, not in the denominator.
    t_len = 10
    sign = np.where(np.arange(t_len) % 2 == 1, 1.0, -1.0)
    r = np.column_stack([0.01 * sign, 0.02 * sign, 0.04 * sign, np.full(t_len, np.nan)])
    r[0] = np.nan
    p = np.tile([1.0, -1.0, 0.5, 1.0], (t_len, 1))
    w = size_positions(p, r, Sizing(scheme="risk_parity", vol_window=4))
    # rows 0-1 hold at most one finite return (< max(2, ⌈4/2⌉)): no σ anywhere, flat
    np.testing.assert_array_equal(w[:2], 0.0)
    np.testing.assert_allclose(w[2:], np.tile([4 / 7, -2 / 7, 0.5 / 7, 0.0], (t_len - 2, 1)), rtol=1e-12)


def test_risk_parity_needs_half_a_window_of_returns_and_a_positive_sigma():
    rng = np.random.default_rng(3)
    r = rng.normal(0.0, 0.01, (30, 3))
    r[0] = np.nan
    r[13:, 1] = np.nan  # symbol 1: returns on rows 1..12 only
    r[:, 2] = 0.001  # constant: σ = 0, never weighted
    w = size_positions(np.ones_like(r), r, Sizing(scheme="risk_parity", vol_window=20))
    # σ needs ≥ max(2, ⌈20/2⌉) = 10 finite returns in rows t-19..t
    np.testing.assert_array_equal(w[:10], 0.0)  # row 9: rows 1..9 = 9 returns
    assert w[10, 0] > 0 and w[10, 1] > 0  # row 10: 10 returns
    assert w[22, 1] > 0 and w[23, 1] == 0.0  # symbol 1: rows 3..12 = 10, rows 4..12 = 9
    np.testing.assert_array_equal(w[:, 2], 0.0)
    np.testing.assert_allclose(w[23:], np.tile([1.0, 0.0, 0.0], (7, 1)), rtol=1e-12)
    np.testing.assert_allclose(w[10:23].sum(axis=1), 1.0, rtol=1e-12)


def test_base_gross_exposure_is_at_most_one():
    rng = np.random.default_rng(4)
    r = rng.normal(0.0, rng.uniform(0.005, 0.03, 12), (200, 12))
    r[0] = np.nan
    p = rng.uniform(-1, 1, r.shape)
    for scheme in ("equal", "risk_parity"):
        w = size_positions(p, r, Sizing(scheme=scheme, vol_window=20))
        assert np.abs(w).sum(axis=1).max() <= 1.0 + 1e-12


def _corr_returns(t_len: int = 40) -> np.ndarray:
    """A and B = 2·A perfectly correlated (period 2), C uncorrelated with both over any 8 aligned rows
    (period 4, Σ A·C = 0 and both have mean 0 over rows 1..8, 9..16, …)."""
    t = np.arange(t_len)
    a = np.where(t % 2 == 1, 0.01, -0.01)
    c = np.where((t - 1) % 4 < 2, 0.01, -0.01)
    r = np.column_stack([a, 2 * a, c])
    r[0] = np.nan
    return r


def test_correlation_penalty_shrinks_only_the_crowded_pair():
    r = _corr_returns()
    sizing = Sizing(max_correlation=0.5, corr_window=8, refresh=8)
    w = size_positions(np.ones_like(r), r, sizing)
    # rows 0-7 use the correlation of row 0 (undefined): no penalty
    np.testing.assert_allclose(w[:8], 1 / 3)
    # from row 8 on ρ_AB = 1, ρ_AC = ρ_BC = 0: A and B divided by 1 + (1 - 0.5) = 1.5
    np.testing.assert_allclose(w[8:], np.tile([2 / 9, 2 / 9, 1 / 3], (32, 1)), rtol=1e-12)


def test_correlation_penalty_needs_a_held_partner_and_spares_a_hedge():
    r = _corr_returns()
    sizing = Sizing(max_correlation=0.5, corr_window=8, refresh=8)
    p = np.ones_like(r)
    p[:, 1] = 0.0  # B flat: A is not crowded
    np.testing.assert_allclose(size_positions(p, r, sizing)[8:], np.tile([1 / 3, 0, 1 / 3], (32, 1)))
    p[:, 1] = -1.0  # long A, short B = 2·A: a hedge, not the same bet
    np.testing.assert_allclose(size_positions(p, r, sizing)[8:], np.tile([1 / 3, -1 / 3, 1 / 3], (32, 1)))
    p[:, 0] = -1.0  # short both: the same bet again
    np.testing.assert_allclose(size_positions(p, r, sizing)[8:], np.tile([-2 / 9, -2 / 9, 1 / 3], (32, 1)))


def test_sector_limit_scales_a_sector_to_exactly_the_limit_and_leaves_the_others():
    p = np.array([[1.0, -1.0, 1.0, 1.0, 1.0], [0.5, 0.0, 1.0, 0.0, 0.5]])
    r = np.zeros_like(p)
    sectors = ["tech", "tech", "energy", None, float("nan")]  # the two missing labels share a group
    w = size_positions(p, r, Sizing(sector_limit=0.3), sectors=sectors)
    # row 0: w = 0.2 each; tech gross 0.4 → 0.3, energy 0.2 kept, UNCLASSIFIED 0.4 → 0.3
    np.testing.assert_allclose(w[0], [0.15, -0.15, 0.2, 0.15, 0.15], rtol=1e-12)
    # row 1: every sector within the limit (tech 0.1, energy 0.2, UNCLASSIFIED 0.1)
    np.testing.assert_array_equal(w[1], [0.1, 0.0, 0.2, 0.0, 0.1])
    with pytest.raises(ValueError, match="sectors"):
        size_positions(p, r, Sizing(sector_limit=0.3))
    with pytest.raises(ValueError, match="one label per symbol"):
        size_positions(p, r, Sizing(sector_limit=0.3), sectors=["tech"])


def test_factor_constraint_minimum_norm_correction_by_hand():
    r = np.zeros((3, 3))
    p = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.3, -0.3, 0.0]])
    b = np.array([[1.0], [1.0], [1.0]])
    w = size_positions(p, r, Sizing(factor_limit=0.2), exposures=b)
    # row 0: Bᵀw = 1 > 0.2, excess 0.8 spread over the 3 held names (BᵀB = 3): 1/3 - 0.8/3 each
    np.testing.assert_allclose(w[0], [0.2 / 3] * 3, rtol=1e-12)
    # row 1: Bᵀw = 2/3, held names 0 and 1 (B_HᵀB_H = 2): 1/3 - 7/30 = 0.1 each; name 2 stays flat
    np.testing.assert_allclose(w[1], [0.1, 0.1, 0.0], rtol=1e-12)
    # row 2: Bᵀw = 0, feasible: unchanged (exactly p / N)
    np.testing.assert_array_equal(w[2], p[2] / 3)


def test_factor_constraint_scales_when_the_held_exposures_are_rank_deficient():
    # one held name, two factors b = (1, 2): the minimum-norm step gives w = 1/3 - bᵀd/|b|² = 0.12 with
    # d = (1/3 - 0.2, 2/3 - 0.2), still |2·0.12| > 0.2, so the row is scaled to 0.2 / 2 = 0.1
    w = size_positions(
        np.array([[1.0, 0.0, 0.0]]),
        np.zeros((1, 3)),
        Sizing(factor_limit=0.2),
        exposures=np.array([[1.0, 2.0], [0.5, 0.5], [0.0, 1.0]]),
    )
    np.testing.assert_allclose(w, [[0.1, 0.0, 0.0]], rtol=1e-12)


def test_factor_constraint_holds_on_random_books_and_keeps_feasible_rows():
    rng = np.random.default_rng(5)
    t_len, n, k = 200, 20, 3
    r = rng.normal(0.0, 0.01, (t_len, n))
    b = rng.normal(0.0, 1.0, (n, k))
    b[7] = np.nan  # excluded: forced flat
    p = rng.uniform(-1, 1, (t_len, n))
    p[::4] *= 0.01  # small books, feasible
    limit = 0.05
    w = size_positions(p, r, Sizing(factor_limit=limit), exposures=b)
    exposure = w @ np.nan_to_num(b)
    assert np.abs(exposure).max() <= limit + 1e-9
    assert (w[:, 7] == 0).all()
    base = p / n
    base[:, 7] = 0.0
    feasible = (np.abs(base @ np.nan_to_num(b)) <= limit).all(axis=1)
    assert feasible.sum() >= 40 and (~feasible).sum() >= 40
    np.testing.assert_array_equal(w[feasible], base[feasible])
    # time-varying exposures (T×N×K): row t uses its own matrix
    bt = np.broadcast_to(b, (t_len, n, k)).copy()
    bt[100:] *= 2.0
    wt = size_positions(p, r, Sizing(factor_limit=limit), exposures=bt)
    np.testing.assert_allclose(wt[:100], w[:100], atol=1e-15)
    assert np.abs(np.einsum("tn,tnk->tk", wt, np.nan_to_num(bt))).max() <= limit + 1e-9


def test_vol_target_hits_the_target_on_iid_returns():
    rng = np.random.default_rng(6)
    t_len, window, target = 3000, 63, 0.10
    r = rng.normal(0.0, [0.01, 0.02], (t_len, 2))  # book p = 1 each: σ_b = √(0.005² + 0.01²) daily
    r[0] = np.nan
    sizer = Sizer(r, Sizing(vol_target=target, vol_window=window, max_leverage=10.0))
    path = sizer.explain(np.ones_like(r))
    # before vol_window book returns: unlevered
    np.testing.assert_array_equal(path.leverage[:window], 1.0)
    # the leverage at t is the hand formula on the book returns b[t-62 .. t]
    book = (path.pre_leverage[:-1] * r[1:]).sum(axis=1)  # book[s-1] = b[s]
    t = 500
    expected = target / (np.std(book[t - window : t], ddof=1) * math.sqrt(252))
    assert path.leverage[t] == pytest.approx(expected, rel=1e-12)
    levered = (path.weights[:-1] * r[1:]).sum(axis=1)[window:]
    assert np.std(levered, ddof=1) * math.sqrt(252) == pytest.approx(target, rel=0.10)
    # an unreachable target is capped at max_leverage
    capped = Sizer(r, Sizing(vol_target=5.0, vol_window=window, max_leverage=2.0)).explain(np.ones_like(r))
    np.testing.assert_array_equal(capped.leverage[window:], 2.0)


def _kelly_returns() -> np.ndarray:
    return np.array([np.nan, 0.02, -0.01, 0.03, 0.00, -0.05, -0.02, 0.01, 0.04])[:, None]


def test_kelly_leverage_by_hand():
    r = _kelly_returns()
    sizing = Sizing(kelly_fraction=0.5, kelly_window=4, kelly_cap=20.0, max_leverage=50.0)
    path = Sizer(r, sizing).explain(np.ones_like(r))
    # book b[s] = r[s] (w = 1). Row 4: b[1..4] = 2, -1, 3, 0 %: μ = 1 %, σ² = (1 + 4 + 4 + 1)e-4 / 3,
    # 0.5 · μ / σ² = 0.5 · 0.01 · 3 / 10e-4 = 15
    assert path.leverage[4] == pytest.approx(15.0, rel=1e-12)
    np.testing.assert_array_equal(path.leverage[:4], 0.0)  # fewer than 4 book returns: no bet
    # row 5: b[2..5] = -1, 3, 0, -5 %: μ < 0 → 0
    assert path.leverage[5] == 0.0
    # row 8: b[5..8] = -5, -2, 1, 4 %: μ = -0.5 % → 0; row 7: b[4..7] = 0, -5, -2, 1: μ < 0 → 0
    assert path.leverage[7] == 0.0 and path.leverage[8] == 0.0
    np.testing.assert_allclose(path.weights[:, 0], path.leverage)
    # clipped at kelly_cap
    capped = Sizer(r, Sizing(kelly_fraction=0.5, kelly_window=4, kelly_cap=1.0)).explain(np.ones_like(r))
    assert capped.leverage[4] == 1.0


def test_vol_target_and_kelly_take_the_smaller_leverage():
    r = _kelly_returns()
    both = Sizing(
        kelly_fraction=0.5, kelly_window=4, kelly_cap=20.0, vol_target=0.2, vol_window=4, max_leverage=50.0
    )
    # row 4: Kelly 15; vol target 0.2 / (σ·√252) with σ = √(10e-4 / 3)
    vol = 0.2 / (math.sqrt(10e-4 / 3) * math.sqrt(252))
    assert Sizer(r, both).explain(np.ones_like(r)).leverage[4] == pytest.approx(min(15.0, vol), rel=1e-12)
    assert vol < 15.0
    capped = Sizing(kelly_fraction=0.5, kelly_window=4, kelly_cap=20.0, max_leverage=0.5)
    assert Sizer(r, capped).explain(np.ones_like(r)).leverage[4] == 0.5


def test_max_drawdown_halves_the_book_from_the_breach_until_recovery():
    # the symbol falls 20 % (100 → 80), then recovers past its high; the book holds it at w = 1
    close = np.array([100.0, 90.0, 85.0, 80.0, 84.0, 88.0, 96.0, 100.0, 105.0, 110.0])
    r = np.concatenate([[np.nan], close[1:] / close[:-1] - 1.0])[:, None]
    path = Sizer(r, Sizing(max_drawdown=0.15, derisk_to=0.5)).explain(np.ones_like(r))
    # equity: 0.9 (dd 10 %), 0.85 (dd 15 %: breach at row 2's close → rows from 2 at half size);
    # then at half size 0.825, 0.845625, 0.86576, 0.90511, 0.92397 (dd 7.6 % > 7.5 %, still half
    # though the price is back at 100), 0.94707 (dd 5.3 % ≤ 7.5 %: full size from row 8)
    expected = [1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1, 1]
    np.testing.assert_array_equal(path.derisk, expected)
    np.testing.assert_array_equal(path.weights[:, 0], expected)


def _random_panel(seed: int, t_len: int = 300, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    common = rng.normal(0.0005, 0.01, (t_len, 1))
    r = 0.8 * common + rng.normal(0.0, 0.008, (t_len, n))
    r[0] = np.nan
    r[rng.random(r.shape) < 0.03] = np.nan
    p = np.clip(rng.normal(0.3, 0.6, (t_len, n)), -1, 1)
    p[rng.random(p.shape) < 0.2] = np.nan
    return r, p


LOOKAHEAD_OPTIONS = {
    "risk_parity": Sizing(scheme="risk_parity", vol_window=20),
    "correlation": Sizing(max_correlation=0.2, corr_window=30, refresh=21),
    "sector": Sizing(sector_limit=0.2),
    "factor": Sizing(factor_limit=0.05),
    "vol_target": Sizing(vol_target=0.3, vol_window=20),
    "kelly": Sizing(kelly_fraction=0.5, kelly_window=40, kelly_cap=3.0),
    "drawdown": Sizing(max_drawdown=0.03, derisk_to=0.25),
    "all": Sizing(
        scheme="risk_parity",
        vol_window=20,
        max_correlation=0.2,
        corr_window=30,
        refresh=21,
        sector_limit=0.2,
        factor_limit=0.05,
        vol_target=0.3,
        kelly_fraction=0.5,
        kelly_window=40,
        kelly_cap=3.0,
        max_drawdown=0.03,
        derisk_to=0.25,
    ),
}


@pytest.mark.parametrize("name", list(LOOKAHEAD_OPTIONS))
def test_no_look_ahead(name):
    sizing = LOOKAHEAD_OPTIONS[name]
    r, p = _random_panel(7)
    sectors = ["a", "a", "a", "b", "b", None, "c", "c"]
    b = np.random.default_rng(8).normal(0.0, 1.0, (8, 2))
    w = size_positions(p, r, sizing, sectors, b)
    assert not np.allclose(w, np.nan_to_num(p) / 8), "the option must be active for the test to bite"
    rng = np.random.default_rng(9)
    for t0 in (60, 130, 146, 147, 220):  # inside a refresh block, at its last row and at the next start
        # three different futures: noise with other positions, a crash and a boom under the same
        # positions (one of the last two moves the drawdown state at t0 if it peeked one row ahead)
        for k, (future_r, future_p) in enumerate(
            (
                (rng.normal(-0.01, 0.05, r[t0 + 1 :].shape), rng.uniform(-1, 1, p[t0 + 1 :].shape)),
                (np.full(r[t0 + 1 :].shape, -0.3), p[t0 + 1 :]),
                (np.full(r[t0 + 1 :].shape, 1.0), p[t0 + 1 :]),
            )
        ):
            r2, p2 = r.copy(), p.copy()
            r2[t0 + 1 :], p2[t0 + 1 :] = future_r, future_p
            w2 = size_positions(p2, r2, sizing, sectors, b)
            np.testing.assert_allclose(w2[: t0 + 1], w[: t0 + 1], rtol=1e-10, atol=1e-14)
            assert k > 0 or not np.allclose(w2[t0 + 1 :], w[t0 + 1 :])  # the future did change


def test_sizer_reuses_its_statistics_across_paths():
    r, p = _random_panel(10)
    sizing = LOOKAHEAD_OPTIONS["all"]
    sectors = ["a", "a", "a", "b", "b", None, "c", "c"]
    b = np.random.default_rng(11).normal(0.0, 1.0, (8, 2))
    sizer = Sizer(r, sizing, sectors, b)
    for q in (p, -p, np.where(np.isnan(p), np.nan, 0.5)):
        np.testing.assert_array_equal(sizer(q), size_positions(q, r, sizing, sectors, b))
    with pytest.raises(ValueError, match="shape"):
        sizer(p[:-1])
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        sizer(np.full_like(p, 1.5))
    with pytest.raises(ValueError, match="exposures"):
        Sizer(r, Sizing(factor_limit=0.1))
    with pytest.raises(ValueError, match="exposures"):
        Sizer(r, Sizing(factor_limit=0.1), exposures=np.ones((7, 2)))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("scheme", "kelly"),
        ("vol_window", 1),
        ("vol_window", 20.5),
        ("corr_window", True),
        ("kelly_window", 0),
        ("refresh", 0),
        ("max_correlation", 1.0),
        ("max_correlation", -0.1),
        ("sector_limit", -0.1),
        ("sector_limit", math.inf),
        ("factor_limit", -0.01),
        ("factor_limit", math.nan),
        ("vol_target", -0.1),
        ("kelly_fraction", 1.5),
        ("kelly_cap", 0.0),
        ("max_leverage", 0.0),
        ("max_drawdown", 1.0),
        ("derisk_to", 1.0),
        ("derisk_to", -0.5),
    ],
)
def test_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^Sizing\.{field} ") as error:
        Sizing(**{field: value})
    assert repr(value) in str(error.value)


def test_validation_accepts_numpy_numbers():
    sizing = Sizing(vol_window=np.int64(20), vol_target=np.float64(0.1), factor_limit=np.float32(0.1))
    assert sizing.vol_window == 20
