"""Profile key ``arms``: the loss matrix (and so stages 03-07) covers only the pool's models in those arms."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

import mmlaw_utils.config as config
from mmlaw_utils.pool import PoolError, load_pool, load_run_pool, select_arms

POOL = pd.DataFrame({
    "model": ["a-0", "b-0", "a-same-0", "a-1", "a-seed2-1"],
    "family": ["a", "b", "a-same", "a", "a-seed2"],
    "params_nominal": [10, 12, 10, 40, 40],
    "arm": ["main", "main", "same_data", "main", "seed"],
})
POOL.attrs["path"] = "pools/tiny.yaml"


def test_select_arms_keeps_the_named_arms_in_pool_order():
    assert select_arms(POOL, ("main",), "p")["model"].tolist() == ["a-0", "b-0", "a-1"]
    both = select_arms(POOL, ("seed", "main"), "p")
    assert both["model"].tolist() == ["a-0", "b-0", "a-1", "a-seed2-1"]
    assert both.index.tolist() == [0, 1, 2, 3] and both.attrs["path"] == "pools/tiny.yaml"
    assert select_arms(POOL, None, "p") is POOL  # no key: every model, as before


def test_a_pool_without_an_arm_column_names_profile_key_and_arm():
    with pytest.raises(PoolError, match=r"profile 'tb': key 'arms' \['main'\].*pools/tiny.yaml has no 'arm' column.*'main'"):
        select_arms(POOL.drop(columns="arm"), ("main",), "tb")


def test_an_arm_no_model_has_names_profile_key_and_arm():
    with pytest.raises(PoolError, match=r"profile 'tb': key 'arms'.*arm 'mian'.*\['main', 'same_data', 'seed'\]"):
        select_arms(POOL, ("main", "mian"), "tb")


def _profile(tmp_path: Path, monkeypatch, body: str) -> None:
    (tmp_path / "p.yaml").write_text("dataset: x.jsonl\ndata_dir: data/p\n" + body)
    monkeypatch.setattr(config, "PROFILES_DIR", tmp_path)


@pytest.mark.parametrize("value", ["main", "[]", "[main, 3]", "{main: 1}"])
def test_a_mistyped_arms_key_is_refused_by_name(tmp_path, monkeypatch, value):
    _profile(tmp_path, monkeypatch, f"arms: {value}\n")
    with pytest.raises(ValueError, match="key 'arms' must be a non-empty list"):
        config.load_profile("p")


def test_run_paths_carry_the_profiles_arms(tmp_path, monkeypatch):
    _profile(tmp_path, monkeypatch, "arms: [main, seed]\n")
    assert config.load_profile("p").arms == ("main", "seed")
    assert config.resolve_run_paths("p", data_dir=tmp_path).arms == ("main", "seed")
    _profile(tmp_path, monkeypatch, "")
    assert config.load_profile("p").arms is None and config.resolve_run_paths("p").arms is None


def test_the_loss_matrix_of_an_arms_profile_holds_only_those_arms(tmp_path):
    """Synthetic caches of 4 models, a pool file that puts them in two arms: assembly sees the main arm only."""
    from mmlaw_utils.scoring.assemble import assemble_loss_matrix
    from mmlaw_utils.scoring.synthetic import SyntheticSettings, generate

    generate(SyntheticSettings(n_families=2, sizes_b=(0.1, 1.0), n_texts=6, seed=1), tmp_path)
    models = yaml.safe_load((tmp_path / "pool.yaml").read_text())["models"]
    arms = ["main", "same_data", "main", "same_data"]
    pool_file = tmp_path / "arms.yaml"
    pool_file.write_text(yaml.safe_dump({"name": "arms", "models": [
        {"id": m["id"], "family": m["family"], "params_b": m["params_b"], "arm": arm} for m, arm in zip(models, arms)]}))
    paths = config.RunPaths(profile="tb", data_dir=tmp_path, figures_dir=tmp_path, pool=pool_file, synthetic=False,
                            arms=("main",))
    lm = assemble_loss_matrix(paths.cache_dir, load_run_pool(paths))
    assert list(lm.model_names) == [models[0]["id"], models[2]["id"]]
    every = assemble_loss_matrix(paths.cache_dir, load_run_pool(config.RunPaths(**{**paths.__dict__, "arms": None})))
    assert len(every.model_names) == 4
    # the synthetic pool file has no arm column: an arms profile on it is an error, not every model
    synthetic = config.RunPaths(**{**paths.__dict__, "pool": tmp_path / "pool.yaml", "synthetic": True})
    with pytest.raises(PoolError, match="no 'arm' column"):
        load_run_pool(synthetic)


def test_the_miniature_pool_analyses_its_main_arm_and_adds_the_diversity_stage():
    from mmlaw_utils.pipeline import DEFAULT_STAGES, profile_stages

    profile = config.load_profile("minipool")
    assert profile.arms == ("main",)
    assert profile_stages(profile) == (*DEFAULT_STAGES, "09_diversity_arms", "10_granularity")
    pool = load_pool(profile.pool)
    main = load_run_pool(config.resolve_run_paths("minipool"))
    assert len(main) == (pool["arm"] == "main").sum() == 30
    assert set(main["arm"]) == {"main"} and main["family"].nunique() == 5
