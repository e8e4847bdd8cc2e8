"""Synthetic pools (mmlaw_utils.scoring.synthetic): real-format caches, seeded, family structure."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mmlaw_utils.scoring.cache import read_cache
from mmlaw_utils.scoring.synthetic import SyntheticSettings, generate, read_pool_file, synthetic_losses, synthetic_texts
from mmlaw_utils.texts import dataset_fingerprint

PROVENANCE_KEYS = {
    "model", "model_revision", "model_hash", "tokenizer", "dtype", "device", "max_length", "window_policy",
    "prefix_policy", "dataset", "dataset_fingerprint", "n_texts", "complete", "params_total", "params_nonembed",
    "package_version", "created_utc",
}
REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL = SyntheticSettings(n_families=3, sizes_b=(0.2, 1.0, 4.0), n_texts=40, seed=7)


def test_caches_are_valid_score_files_matching_the_pool(tmp_path):
    paths = generate(SMALL, tmp_path)
    pool = yaml.safe_load((tmp_path / "pool.yaml").read_text())
    assert len(paths) == len(pool["models"]) == 9
    texts = synthetic_texts(SMALL)
    fingerprint = dataset_fingerprint(texts["text_id"], texts["text"])
    for path, entry in zip(paths, pool["models"]):
        frame, provenance = read_cache(path)
        assert PROVENANCE_KEYS <= set(provenance)
        assert provenance["model"] == entry["id"]
        assert provenance["dataset_fingerprint"] == fingerprint
        assert provenance["complete"] is True
        assert provenance["params_total"] == entry["params"] == round(entry["params_b"] * 1e9)
        assert frame["text_id"].tolist() == texts["text_id"].tolist()
        assert (frame["nll"] > 0).all() and (frame["n_tokens"] > 0).all() and (frame["n_bytes"] > 0).all()
    families = [m["family"] for m in pool["models"]]
    assert sorted(set(families)) == ["fam-a", "fam-b", "fam-c"] and families.count("fam-a") == 3


def test_seeded_and_deterministic():
    _, first, _ = synthetic_losses(SMALL)
    _, again, _ = synthetic_losses(SMALL)
    _, other, _ = synthetic_losses(SyntheticSettings(**{**SMALL.__dict__, "seed": 8}))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_members_of_a_family_share_text_difficulty():
    """Within a family, log-loss differences between two models vary much less over texts than across families."""
    settings = SyntheticSettings(n_families=4, n_texts=2000, seed=1)
    pool, nll, _ = synthetic_losses(settings)
    log_nll = np.log(nll)
    same, cross = [], []
    for i, j in itertools.combinations(range(len(pool)), 2):
        spread = np.var(log_nll[i] - log_nll[j])
        (same if pool["family"][i] == pool["family"][j] else cross).append(spread)
    # independent reference: the generator's variances, 2 sd_model^2 within and 2 (sd_family^2 + sd_model^2) across
    assert np.mean(same) == pytest.approx(2 * settings.model_text_sd**2, rel=0.1)
    assert np.mean(cross) == pytest.approx(2 * (settings.family_text_sd**2 + settings.model_text_sd**2), rel=0.1)


def test_larger_models_have_lower_mean_loss_within_each_family():
    pool, nll, _ = synthetic_losses(SyntheticSettings(n_texts=500))
    pool["mean"] = nll.mean(axis=1)
    for _, members in pool.groupby("family"):
        assert members.sort_values("params")["mean"].is_monotonic_decreasing


def test_current_caches_are_kept_and_changed_settings_rewrite(tmp_path):
    paths = generate(SMALL, tmp_path)
    stamps = [p.stat().st_mtime_ns for p in paths]
    generate(SMALL, tmp_path)
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    changed = SyntheticSettings(**{**SMALL.__dict__, "model_text_sd": 0.05})
    generate(changed, tmp_path)
    assert read_cache(paths[0])[1]["model_hash"] == changed.digest() != SMALL.digest()


def test_settings_are_checked():
    with pytest.raises(ValueError, match="unknown key"):
        SyntheticSettings.from_mapping({"n_familes": 3})
    with pytest.raises(ValueError, match="n_families"):
        SyntheticSettings.from_mapping({"n_families": 1})
    assert SyntheticSettings.from_mapping({"sizes_b": [1, 2]}).sizes_b == (1, 2)


def test_cli_generates_the_profile_into_a_given_folder(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mmlaw_utils", "synth", "--profile", "synthetic", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, check=True, cwd=REPO_ROOT,
    )
    profile = yaml.safe_load((REPO_ROOT / "configs/profiles/synthetic.yaml").read_text())
    n_models = profile["synthetic"]["n_families"] * len(profile["synthetic"]["sizes_b"])
    assert f"{n_models} score caches" in result.stdout
    assert len(list((tmp_path / "scores").glob("*.parquet"))) == n_models
    frame, provenance = read_cache(next((tmp_path / "scores").glob("*.parquet")))
    assert len(frame) == profile["n_texts"] == provenance["n_texts"]


def test_pool_file_reads_as_a_pool_table(tmp_path):
    paths = generate(SMALL, tmp_path)
    pool = read_pool_file(tmp_path / "pool.yaml")
    assert list(pool.columns[:3]) == ["model", "family", "params_nominal"]
    for path, row in zip(paths, pool.itertuples()):
        provenance = read_cache(path)[1]
        assert (provenance["model"], provenance["params_total"]) == (row.model, row.params_nominal)
    with pytest.raises(FileNotFoundError, match="mmlaw_utils synth"):
        read_pool_file(tmp_path / "nope.yaml")


def test_pool_file_agrees_with_the_pool_module(tmp_path):
    from mmlaw_utils.pool import load_pool, pair_group_counts

    generate(SMALL, tmp_path)
    ours, theirs = read_pool_file(tmp_path / "pool.yaml"), load_pool(tmp_path / "pool.yaml")
    assert ours["model"].tolist() == theirs["model"].tolist()
    assert ours["family"].tolist() == theirs["family"].tolist()
    assert ours["params_nominal"].tolist() == theirs["params_nominal"].tolist()
    assert pair_group_counts(theirs) == {"single": 9, "same_family": 9, "cross_family": 27}
