"""Bootstrap over texts: weighted means vs explicit resamples, reproducibility, refits, intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmlaw_utils.analysis.bootstrap import (
    bootstrap_ci,
    bootstrap_counts,
    bootstrap_group_fits,
    prediction_band,
    weighted_pair_means,
)
from mmlaw_utils.analysis.fit import fit_scaling_law
from mmlaw_utils.analysis.frontier import collaboration_groups
from mmlaw_utils.analysis.oracle import pair_oracle_losses


def synthetic_pool(k: int = 12, n: int = 300, seed: int = 0):
    """Losses falling with params, with family-specific per-text noise (nats)."""
    rng = np.random.default_rng(seed)
    params = np.round(np.geomspace(1e8, 7e10, k)).astype(np.int64)
    families = np.array(["a", "b", "c"])[np.arange(k) % 3]
    base = rng.gamma(20.0, 90.0, size=n)
    mean_loss = 900.0 * (params / 1e9) ** -0.4 + 1700.0
    L = mean_loss[:, None] * base[None, :] / base.mean() + rng.normal(0, 40.0, size=(k, n))
    return L, params, families


def test_counts_are_seeded_and_independent_of_chunking():
    a = bootstrap_counts(50, 6, seed=3)
    b = bootstrap_counts(50, 6, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(bootstrap_counts(50, 2, seed=3, start=4), a[4:])
    assert (a.sum(axis=1) == 50).all()
    assert not np.array_equal(a, bootstrap_counts(50, 6, seed=4))


def test_weighted_means_equal_explicitly_resampled_matrices():
    L, _, _ = synthetic_pool(k=7, n=40)
    counts = bootstrap_counts(40, 3, seed=1)
    singles, pairs = weighted_pair_means(L, counts, block_texts=9)
    rows, cols = np.triu_indices(7, k=1)
    for b in range(3):
        resampled = L[:, np.repeat(np.arange(40), counts[b])]  # the drawn texts, explicitly
        M = pair_oracle_losses(resampled)
        np.testing.assert_allclose(singles[b], np.diag(M), rtol=1e-12)
        np.testing.assert_allclose(pairs[b], M[rows, cols], rtol=1e-12)


def test_group_fits_match_refitting_an_explicit_resample():
    L, params, families = synthetic_pool()
    boot = bootstrap_group_fits(L, params, families, n_bootstrap=3, seed=9, chunk_size=2)
    assert len(boot) == 9 and list(boot["resample"].unique()) == [0, 1, 2]
    counts = bootstrap_counts(L.shape[1], 3, seed=9)
    resampled = L[:, np.repeat(np.arange(L.shape[1]), counts[2])]
    groups = collaboration_groups(resampled, params, families)
    for name, frame in groups.items():
        front = frame[frame["on_frontier"]]
        expected = fit_scaling_law(front["params"].to_numpy() / 1e9, front["loss"].to_numpy())
        row = boot[(boot["resample"] == 2) & (boot["group"] == name)].iloc[0]
        assert row["n_frontier"] == len(front)
        assert row["alpha"] == pytest.approx(expected.alpha, rel=1e-6)
        assert row["L_inf"] == pytest.approx(expected.L_inf, rel=1e-6)
        assert row["A"] == pytest.approx(expected.A, rel=1e-5)


def test_group_fits_are_reproducible_and_chunk_independent():
    L, params, families = synthetic_pool(k=9, n=120, seed=2)
    one = bootstrap_group_fits(L, params, families, n_bootstrap=4, seed=5, chunk_size=4)
    two = bootstrap_group_fits(L, params, families, n_bootstrap=4, seed=5, chunk_size=1)
    pd.testing.assert_frame_equal(one, two)
    other = bootstrap_group_fits(L, params, families, n_bootstrap=4, seed=6)
    assert not np.allclose(one["alpha"].to_numpy(), other["alpha"].to_numpy(), equal_nan=True)


def test_failed_fits_are_recorded_not_raised():
    L, params, families = synthetic_pool(k=4, n=50)  # 4 singles -> at most 4 frontier points; pairs fewer
    boot = bootstrap_group_fits(L, params, families, n_bootstrap=2, seed=0)
    small = boot[boot["n_frontier"] < 4]
    assert len(small) > 0
    assert small["alpha"].isna().all() and (small["status"] == "too_few_points").all()


def test_ci_percentiles_hand_computed():
    boot = pd.DataFrame(
        {
            "resample": np.arange(101),
            "group": "single",
            "A": np.arange(101, dtype=float),
            "alpha": np.arange(101, dtype=float) / 100,
            "L_inf": np.r_[np.arange(100, dtype=float), np.nan],
        }
    )
    ci = bootstrap_ci(boot, level=0.9).set_index("group")
    # the resample with a NaN is left out entirely: A over 0..99, linear-interpolated percentiles
    assert ci.loc["single", "n_ok"] == 100 and ci.loc["single", "n_resamples"] == 101
    assert ci.loc["single", "A_lo"] == pytest.approx(0.05 * 99)
    assert ci.loc["single", "A_hi"] == pytest.approx(0.95 * 99)
    assert ci.loc["single", "A_median"] == pytest.approx(49.5)
    assert ci.loc["single", "alpha_hi"] == pytest.approx(0.95 * 0.99)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(boot, level=1.5)


def test_prediction_band_brackets_the_curves():
    boot = pd.DataFrame(
        {"group": "single", "A": [100.0, 200.0, 300.0], "alpha": [0.5, 0.5, 0.5], "L_inf": [10.0, 10.0, 10.0]}
    )
    lo, hi = prediction_band(boot, "single", np.array([1.0, 4.0]), level=0.5)
    np.testing.assert_allclose(lo, [160.0, 85.0])  # 25th percentile of A = 150
    np.testing.assert_allclose(hi, [260.0, 135.0])  # 75th percentile of A = 250
    with pytest.raises(ValueError, match="no successful"):
        prediction_band(boot, "cross_family", np.array([1.0]))


def test_bootstrap_pairs_with_a_model_winning_everywhere_tie_with_its_single():
    L, _, _ = synthetic_pool(k=30, n=400, seed=4)
    L[5] = L.min(axis=0) - 1.0
    singles, pairs = weighted_pair_means(L, bootstrap_counts(400, 5, seed=0))
    rows, cols = np.triu_indices(30, k=1)
    with_five = (rows == 5) | (cols == 5)
    assert np.all(pairs[:, with_five] == singles[:, [5]])
