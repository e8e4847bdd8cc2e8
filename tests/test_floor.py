"""Floor tests: the likelihood-ratio test of the paper's relative floor and the curvature test in ln P."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmlaw_utils.analysis.floor import (
    curvature_test,
    floor_test_row,
    floor_tests_table,
    paper_largest_params_b,
    paper_relative_floors,
    relative_floor_lr,
)
from mmlaw_utils.analysis.frontier import collaboration_groups

P_B = np.geomspace(1e-3, 10.0, 12)
NOISE = np.array([0.3, -0.2, 0.1, -0.4, 0.2, 0.0, -0.1, 0.3, -0.3, 0.1, 0.2, -0.2])


def test_paper_relative_floor_by_hand():
    assert paper_largest_params_b({"x": (1.0, 3.0, 8.0), "y": (2.0, 5.0)}) == {
        "single": 8.0, "same_family": 11.0, "cross_family": 13.0}
    rho = paper_relative_floors()
    largest = paper_largest_params_b()
    assert rho["single"] == pytest.approx(1765.0285 / (886.1545 * largest["single"] ** -0.3578 + 1765.0285))
    assert 0.85 < rho["single"] < rho["cross_family"] < rho["same_family"] < 1


def test_a_frontier_with_its_floor_at_the_tested_size_is_not_rejected():
    losses = 100.0 * P_B**-0.5 + 900.0 + NOISE
    rho = 900.0 / losses[-1]  # the true floor, as a share of the loss at the largest P
    result = relative_floor_lr(P_B, losses, rho)
    assert result["L_inf_null"] == pytest.approx(900.0)
    assert result["lr"] < 3.84 and not result["lr_rejects"]


def test_a_straight_log_line_rejects_the_relative_floor():
    losses = 2000.0 - 60.0 * np.log(P_B) + NOISE
    result = relative_floor_lr(P_B, losses, 0.9)
    assert result["lr_rejects"] and result["lr"] > 3.84 and result["lr_p"] < 0.05
    assert curvature_test(P_B, losses)["curvature_outcome"] == "straight"


def test_curvature_outcomes():
    x = np.log(P_B)
    assert curvature_test(P_B, 100.0 * P_B**-0.5 + 900.0 + NOISE)["curvature_outcome"] == "bends toward a floor"
    concave = 2000.0 - 20.0 * x - 3.0 * (x - x.min()) ** 2 + NOISE
    result = curvature_test(P_B, concave)
    assert result["curvature_outcome"] == "bends the wrong way" and result["curvature"] == pytest.approx(-3.0, abs=0.1)
    assert curvature_test(P_B[:3], concave[:3])["curvature_outcome"] == "too few points"


def test_floor_tests_table_variants_match_direct_calls():
    rng = np.random.default_rng(1)
    params = np.array([1, 2, 4, 8, 16, 32] * 3) * 10**4
    families = np.repeat(["a", "b", "c"], 6)
    L = (2000 * (params / 1e4)[:, None] ** -0.2) * rng.uniform(0.9, 1.1, size=(18, 50))
    n_bytes = rng.integers(100, 200, size=50)
    table = floor_tests_table(L, params, families, n_bytes=n_bytes, params_nonembed=params // 2, min_params=3e4)
    assert set(table["variant"]) == {"all", "min_params>=30000", "nonembed", "bits_per_byte"}
    groups = collaboration_groups(L, params, families)
    front = groups["single"][groups["single"]["on_frontier"]]
    direct = floor_test_row("all", "single", front["params"].to_numpy(float) / 1e9, front["loss"].to_numpy(float),
                            paper_relative_floors()["single"])
    row = table[(table["variant"] == "all") & (table["group"] == "single")].iloc[0]
    assert row["lr"] == pytest.approx(direct["lr"]) and row["curvature_outcome"] == direct["curvature_outcome"]
    bpb = table[(table["variant"] == "bits_per_byte") & (table["group"] == "single")].iloc[0]
    # the largest P of a Pareto frontier holds its lowest loss: the best model in bits per byte
    expected = (L / (n_bytes[None, :] * math.log(2))).mean(axis=1)
    assert bpb["L_inf_null"] == pytest.approx(paper_relative_floors()["single"] * expected.min())
