"""Test bed (configs/pools/testbed.yaml): the one-recipe size ladder, the control arms, build-worker locks,
and the committed records (held-out loss falls with size in every family)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mmlaw_utils.config import REPO_ROOT, load_profile
from mmlaw_utils.minipool import recipe, train

POOL_PATH = REPO_ROOT / "configs" / "pools" / "testbed.yaml"
DATA_DIR = REPO_ROOT / "data" / "testbed"


@pytest.fixture(scope="module")
def pool() -> dict:
    return train.load_pool_config(POOL_PATH)


@pytest.fixture(scope="module")
def models(pool) -> pd.DataFrame:
    frame = pd.DataFrame(pool["models"])
    frame["params"] = (frame["params_b"] * 1e9).round().astype(int)
    return frame


# ----------------------------------------------------------------------------- recipe functions
def test_target_params_is_geometric_over_the_decades():
    targets = recipe.target_params(1e6, 3.0, 4)
    assert targets == pytest.approx([1e3, 1e4, 1e5, 1e6])


def test_heads_widths_lr_and_token_rounding_hand_cases():
    assert [recipe.n_heads_for(d, 8) for d in (4, 10, 14, 16, 24, 112)] == [1, 1, 1, 2, 3, 14]
    assert recipe.width_candidates(8, max_width=40) == [4, 6, 8, 10, 12, 14, 16, 24, 32, 40]
    assert recipe.learning_rate(128, 0.002, 128, 0.01) == pytest.approx(0.002)
    assert recipe.learning_rate(32, 0.002, 128, 0.01) == pytest.approx(0.004)  # 0.002 * sqrt(4)
    assert recipe.learning_rate(2, 0.002, 128, 0.01) == pytest.approx(0.01)  # capped
    # 20 x 1000 = 20,000 tokens in steps of 4 x 256 = 1,024: 19.53 -> 20 steps
    assert recipe.train_tokens(1000, 20, 4, 256) == 20 * 1024
    assert recipe.vocab_size_of({"kind": "bytes", "eos": "<e>", "bos": "<e>"}) == 257


def test_exact_params_counts_a_hand_computed_gpt2():
    # GPT-2, V=10, d=4, 1 layer, context 8, tied: wte 40 + wpe 32 + block (2 LN 16 + attn 4*12+12 + 4*4+4
    # + mlp 4*16+16 + 16*4+4) + final LN 8
    block = 16 + (48 + 12) + (16 + 4) + (64 + 16) + (64 + 4)
    assert recipe.exact_params("gpt2", 10, 4, 1, 1, 8) == 40 + 32 + block + 8


# ----------------------------------------------------------------------------- the pool file
def test_main_arm_meets_the_issue_numbers(pool, models):
    main = models[models["arm"] == "main"]
    families = pool["families"]
    assert len(families) >= 5 and set(main["family"]) == set(families)
    assert len({spec["architecture"] for spec in families.values()}) == len(families)
    assert len({train.tokenizer_label(spec["tokenizer"]) for spec in families.values()}) == len(families)
    assert len({spec["mixture"] for spec in families.values()}) == len(families)
    for family, group in main.sort_values("params").groupby("family"):
        params = group["params"].to_numpy()
        assert len(group) >= 6, family
        assert math.log10(params.max() / params.min()) >= 2.5, family
        assert params.max() >= 1_000_000, family
        ratios = params[1:] / params[:-1]
        assert ratios.min() > 1.8 and ratios.max() < 6, (family, ratios)  # near-geometric steps
        # depth and width grow smoothly: one more layer per size, width never shrinks
        assert (np.diff(group["n_layers"].to_numpy()) == 1).all(), family
        assert (np.diff(group["d_model"].to_numpy()) > 0).all(), family


def test_one_recipe_for_every_size(pool, models):
    rec = pool["recipe"]
    assert rec["tokens_per_param"] >= 10 and rec["context"] >= 256
    assert models["train_batch_size"].nunique() == 1
    step_tokens = rec["batch_size"] * rec["context"]
    per_param = models["train_tokens"] / models["params"]
    # whole steps around the budget: off by at most half a step
    assert (abs(models["train_tokens"] - rec["tokens_per_param"] * models["params"]) <= step_tokens / 2).all()
    assert per_param[models["params"] > 50_000].between(19.5, 20.5).all()
    for spec in pool["families"].values():
        assert spec["training"]["context"] == rec["context"] and spec["training"]["batch_size"] == rec["batch_size"]
    expected_lr = [recipe.learning_rate(d, rec["lr_ref"], rec["d_ref"], rec["lr_max"]) for d in models["d_model"]]
    assert models["train_lr"].tolist() == pytest.approx(expected_lr)


def test_control_arms(pool, models):
    same = models[models["arm"] == "same_data"]
    assert set(same["base_family"]) == set(pool["families"])
    assert (same.groupby("base_family").size() >= 4).all()
    assert same["mixture"].nunique() == 1 and same["mixture"].iloc[0] not in {
        spec["mixture"] for spec in pool["families"].values()}
    seed = models[models["arm"] == "seed"]
    assert seed["base_family"].nunique() == 1 and seed["family"].nunique() == 2
    assert (seed.groupby("family").size() >= 3).all()
    base = seed["base_family"].iloc[0]
    assert (seed["mixture"] == pool["families"][base]["mixture"]).all()
    # a replica has the main model's shape, and another seed (the seed follows the model name)
    main = models[(models["arm"] == "main") & (models["family"] == base)].set_index("size_index")
    for row in seed.itertuples():
        assert (row.d_model, row.n_layers) == (main.loc[row.size_index, "d_model"], main.loc[row.size_index, "n_layers"])
    seeds = {train.model_seed(1234, train.model_name(e)) for e in pool["models"]}
    assert len(seeds) == len(pool["models"])


def test_models_are_cheapest_first_and_match_the_recipe(pool):
    flops = [m["est_flops"] for m in pool["models"]]
    assert flops == sorted(flops)
    raw = yaml.safe_load(POOL_PATH.read_text())
    assert recipe.expand_models(raw) == raw["models"], "rerun python -m mmlaw_utils.minipool.recipe --write"


def test_profile_points_at_the_testbed():
    profile = load_profile("testbed")
    assert profile.pool == POOL_PATH and profile.data_dir == DATA_DIR
    assert Path(profile.dataset) == REPO_ROOT / "data" / "texts" / "mixed_heldout.jsonl"
    assert profile.figures_dir == REPO_ROOT / "figures" / "testbed"


# ----------------------------------------------------------------------------- control arms in a tiny build
def test_tiny_build_with_arms_shares_the_family_tokenizer(tmp_path):
    from mmlaw_utils.minipool import corpora

    texts = [text for doc_id, text in corpora.lee_news_docs() if doc_id.startswith("lee:lee:")][:6]
    eval_file = tmp_path / "eval.jsonl"
    pd.DataFrame({"text_id": [f"t{i}" for i in range(len(texts))], "text": texts}).to_json(
        eval_file, orient="records", lines=True, force_ascii=False)
    root = tmp_path / "models"
    entry = {"params_b": 1e-6, "d_model": 8, "n_layers": 1, "n_heads": 1, "train_tokens": 2048}
    pool = {
        "name": "tiny-arms", "tokenizer_dir": str(tmp_path / "tokenizers"),
        "training": {"context": 32, "batch_size": 4, "log_every": 2, "checkpoint_every": 4, "threads": 1, "lr": 1e-2},
        "mixtures": {"own": [{"source": "reviews", "max_bytes": 60000}],
                     "shared": [{"source": "lee_news", "max_bytes": 60000}]},
        "families": {"a": {"architecture": "llama", "mixture": "own", "tie_embeddings": True,
                           "tokenizer": {"kind": "byte_bpe", "vocab_size": 300, "eos": "<|endoftext|>"}}},
        "models": [{**entry, "id": str(root / "a-d8"), "family": "a", "arm": "main"},
                   {**entry, "id": str(root / "a-same-d8"), "family": "a-same", "base_family": "a",
                    "arm": "same_data", "mixture": "shared"},
                   {**entry, "id": str(root / "a-seed2-d8"), "family": "a-seed2", "base_family": "a", "arm": "seed"}],
    }
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump(pool))
    table = train.build_pool(path, log_dir=tmp_path / "logs", eval_dataset=eval_file).set_index("name")
    assert table.loc["a-same-d8", "arm"] == "same_data" and table.loc["a-seed2-d8", "base_family"] == "a"
    assert table.loc["a-d8", "mixture"] == "own" and table.loc["a-same-d8", "mixture"] == "shared"
    # one tokenizer for the family: the control-arm folder holds the same tokenizer.json
    own = json.loads((root / "a-d8" / "tokenizer.json").read_text())
    assert json.loads((root / "a-same-d8" / "tokenizer.json").read_text()) == own
    assert table.loc["a-d8", "data_sha256"] != table.loc["a-same-d8", "data_sha256"]
    assert table.loc["a-d8", "data_sha256"] == table.loc["a-seed2-d8", "data_sha256"]
    assert table.loc["a-d8", "seed"] != table.loc["a-seed2-d8", "seed"]
    assert table.loc["a-d8", "val_loss"] != table.loc["a-seed2-d8", "val_loss"]
    assert (root / "_family" / "a--shared" / "tokens.npy").is_file()


def test_a_held_lock_is_not_taken_twice(tmp_path):
    lock = tmp_path / "m.train.lock"
    with train.exclusive(lock, wait=False) as first:
        assert first
        with train.exclusive(lock, wait=False) as second:
            assert not second
    with train.exclusive(lock, wait=False) as again:
        assert again


# ----------------------------------------------------------------------------- committed records
def _committed_table() -> pd.DataFrame | None:
    path = DATA_DIR / "models_table.csv"
    return pd.read_csv(path) if path.is_file() else None


@pytest.mark.skipif(_committed_table() is None, reason="no test-bed model has been committed yet")
def test_committed_models_table_matches_the_pool_and_logs(pool):
    table = _committed_table()
    entries = {e["id"]: e for e in pool["models"]}
    assert set(table["model"]) <= set(entries)
    for row in table.itertuples():
        entry = entries[row.model]
        assert row.arm == entry["arm"] and row.family == entry["family"], row.model
        assert row.tokens_trained == entry["train_tokens"], row.model
        assert (row.d_model, row.n_layers, row.batch_size) == (entry["d_model"], entry["n_layers"],
                                                                 entry["train_batch_size"])
        assert row.lr == pytest.approx(entry["train_lr"]), row.model
        log = pd.read_csv(DATA_DIR / "train_logs" / f"{row.name}.csv")
        assert log["tokens"].max() == row.tokens_trained
        assert np.isfinite(row.train_seconds) and row.train_seconds > 0
        assert (DATA_DIR / "tokenizers" / row.base_family / "tokenizer.json").is_file()


@pytest.mark.skipif(_committed_table() is None, reason="no test-bed model has been committed yet")
def test_held_out_loss_falls_with_size_in_every_family():
    """Over the committed caches: mean NLL per held-out text decreases with parameters within each family."""
    from mmlaw_utils.scoring import cache
    from mmlaw_utils.texts import dataset_fingerprint, load_texts

    profile = load_profile("testbed")
    texts = load_texts(profile.dataset)
    fingerprint = dataset_fingerprint(texts["text_id"], texts["text"])
    table = _committed_table()
    rows = []
    for row in table.itertuples():
        path = cache.cache_path(profile.cache_dir, row.model, fingerprint)
        if path.is_file():
            results, provenance = cache.read_cache(path)
            assert provenance["complete"] and results["text_id"].tolist() == texts["text_id"].tolist(), row.model
            rows.append({"family": row.family, "params": provenance["params_total"], "nll": results["nll"].mean()})
    scored = pd.DataFrame(rows)
    if scored.empty:
        pytest.skip("no committed cache matches the held-out set")
    for family, group in scored.sort_values("params").groupby("family"):
        assert (np.diff(group["nll"].to_numpy()) < 0).all(), (family, group.to_dict("records"))


def test_registry_sources_accept_pairs_or_records(tmp_path, monkeypatch):
    """A source registry module may return (doc_id, text) pairs or {doc_id, text} records; unknown names fail."""
    from mmlaw_utils.minipool import corpora

    (tmp_path / "fake_registry.py").write_text(
        "SOURCES = {'pairs': None, 'records': None}\n"
        "def training_documents(name):\n"
        "    if name == 'pairs':\n"
        "        return [('p:1', 'alpha beta'), ('p:2', 'gamma')]\n"
        "    return [{'doc_id': 'r:1', 'text': 'delta', 'domain': 'x'}]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load, known = corpora.source_loader("fake_registry")
    assert known == ["pairs", "records"]
    assert load("pairs") == [("p:1", "alpha beta"), ("p:2", "gamma")] and load("records") == [("r:1", "delta")]
    evals = pd.DataFrame({"text_id": ["e"], "text": ["unrelated words"]})
    docs, manifest = corpora.build_mixture([{"source": "pairs"}, {"source": "records"}], evals, registry="fake_registry")
    assert [d[0] for d in docs] == ["p:1", "p:2", "r:1"] and manifest["n_docs"] == 3
    with pytest.raises(ValueError, match="unknown training source 'wiki'"):
        corpora.build_mixture([{"source": "wiki"}], evals, registry="fake_registry")


def test_a_model_scored_by_another_worker_is_left_to_it(tmp_path, monkeypatch):
    from mmlaw_utils.scoring import cache

    profile = load_profile("testbed")
    monkeypatch.setattr(type(profile), "cache_dir", property(lambda self: tmp_path / "scores"))
    entry = {"id": "models/testbed/x-d4l2"}
    assert not train.scoring_elsewhere(entry, profile, "f" * 64)
    held = cache.lock_path(cache.cache_path(tmp_path / "scores", entry["id"], "f" * 64))
    with train.exclusive(held, wait=False) as mine:
        assert mine and train.scoring_elsewhere(entry, profile, "f" * 64)
    assert not train.scoring_elsewhere(entry, profile, "f" * 64)
