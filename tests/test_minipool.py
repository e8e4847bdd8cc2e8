"""The miniature pool (configs/pools/minipool.yaml, the default profile): the one-recipe size ladder and its
control arms, tokenizers, deterministic resumable training, build-worker locks, a tiny pool going through
build -> score -> analysis (CPU, tmp dirs), and the committed records (every model scored, held-out loss
falling with size in every family)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from mmlaw_utils.config import DEFAULT_PROFILE, REPO_ROOT, load_profile
from mmlaw_utils.minipool import corpora, recipe, train
from mmlaw_utils.scoring import assemble, cache
from mmlaw_utils.scoring.models import prefix_token
from mmlaw_utils.texts import dataset_fingerprint, load_texts

POOL_PATH = REPO_ROOT / "configs" / "pools" / "minipool.yaml"
DATA_DIR = REPO_ROOT / "data" / "minipool"
NOMINAL_SPECIALS = {"bytes": 256}  # a raw-bytes vocabulary is 256 symbols plus its specials

PROBE = "Zürich café — naïve façade, £3,000 in 1987!\tΕλληνικά 日本語 🙂\n\n  double  spaces  "


@pytest.fixture(scope="module")
def pool() -> dict:
    return train.load_pool_config(POOL_PATH)


@pytest.fixture(scope="module")
def models(pool) -> pd.DataFrame:
    frame = pd.DataFrame(pool["models"])
    frame["params"] = (frame["params_b"] * 1e9).round().astype(int)
    return frame


@pytest.fixture(scope="module")
def review_texts() -> list[str]:
    return [text for _, text in corpora.review_docs()]


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
    # two more seeds of every family, at sizes among 1-3, for both the main and the same_data arm
    assert set(seed["base_family"]) == set(pool["families"]) and set(seed["replicates"]) == {"main", "same_data"}
    assert (seed.groupby(["base_family", "replicates", "size_index"]).size() == 2).all()
    assert set(seed["size_index"]) == set(pool["arms"]["seed"]["sizes"]) <= {1, 2, 3}
    for row in seed.itertuples():
        # a replica has its replicated model's shape and mixture, and another seed (the seed follows the model name)
        twin = models[(models["arm"] == row.replicates) & (models["base_family"] == row.base_family)
                      & (models["size_index"] == row.size_index)]
        assert len(twin) == 1, row.id
        assert (row.d_model, row.n_layers, row.mixture) == (twin["d_model"].iloc[0], twin["n_layers"].iloc[0],
                                                            twin["mixture"].iloc[0])
    seeds = {train.model_seed(1234, train.model_name(e)) for e in pool["models"]}
    assert len(seeds) == len(pool["models"])


def test_models_are_cheapest_first_and_match_the_recipe(pool):
    flops = [m["est_flops"] for m in pool["models"]]
    assert flops == sorted(flops)
    raw = yaml.safe_load(POOL_PATH.read_text())
    assert recipe.expand_models(raw) == raw["models"], "rerun python -m mmlaw_utils.minipool.recipe --write"


def test_nominal_params_match_instantiated_models(pool):
    """params_b of every entry = parameters of the model its dims build, with the spec's vocabulary."""
    for entry in pool["models"]:
        spec = pool["families"][entry["base_family"]]
        tok = spec["tokenizer"]
        vocab = tok.get("vocab_size") or NOMINAL_SPECIALS[tok["kind"]] + len({tok.get("bos"), tok.get("eos"), tok.get("unk")} - {None})
        config = train.model_config(spec["architecture"], vocab, entry["d_model"], entry["n_layers"], entry["n_heads"],
                                    spec["training"]["context"], 0, 0, tie_embeddings=spec.get("tie_embeddings"))
        model = train.build_model(config, seed=0)
        unique = {id(p): p.numel() for p in model.parameters()}
        assert sum(unique.values()) == round(entry["params_b"] * 1e9), entry["id"]
        assert entry["architecture"] == spec["architecture"]


def test_the_default_profile_is_the_pool_on_the_mixed_set():
    profile = load_profile("minipool")
    assert DEFAULT_PROFILE == "minipool"
    assert profile.pool == POOL_PATH and profile.data_dir == DATA_DIR
    assert Path(profile.dataset) == REPO_ROOT / "data" / "texts" / "mixed_heldout.jsonl"
    assert profile.figures_dir == REPO_ROOT / "figures"
    assert profile.arms == ("main",)  # Table 1, frontiers and fits on the main arm


# ----------------------------------------------------------------------------- tokenizers
@pytest.mark.parametrize("spec", [
    {"kind": "byte_bpe", "vocab_size": 400, "eos": "<|endoftext|>"},
    {"kind": "byte_bpe", "vocab_size": 400, "pretokenizer": "digits", "bos": "</s>", "eos": "</s>"},
    {"kind": "bytes", "eos": "<|endoftext|>"},
    {"kind": "unigram_bytes", "vocab_size": 400, "eos": "<|endoftext|>", "unk": "<unk>"},
    {"kind": "sp_bpe", "vocab_size": 400, "bos": "<s>", "eos": "</s>", "unk": "<unk>"},
], ids=lambda s: train.tokenizer_label(s))
def test_tokenizers_are_lossless_and_load_with_autotokenizer(spec, review_texts, tmp_path):
    from transformers import AutoTokenizer

    trained = train.train_tokenizer(spec, review_texts)
    trained.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in (PROBE, review_texts[0]):
        ids = loaded(text, add_special_tokens=False)["input_ids"]
        assert loaded.decode(ids) == text  # lossless: the summed NLL covers exactly the text
        assert ids == trained(text, add_special_tokens=False)["input_ids"]
    assert loaded.bos_token_id is not None or loaded.eos_token_id is not None
    if spec["kind"] == "bytes":
        assert len(loaded(review_texts[0], add_special_tokens=False)["input_ids"]) == len(review_texts[0].encode())
    else:
        assert len(loaded) == spec["vocab_size"]


def _save_folder(folder: Path, architecture: str, tokenizer) -> None:
    config = train.model_config(architecture, len(tokenizer), 16, 1, 2, 32, tokenizer.bos_token_id, tokenizer.eos_token_id)
    train.build_model(config, seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def test_every_family_folder_reloads_its_own_tokenizer(pool, review_texts, tmp_path):
    """A model folder of each family's architecture + tokenizer kind loads (AutoTokenizer) to the same tokens."""
    for family, spec in pool["families"].items():
        tok_spec = {**spec["tokenizer"], **({"vocab_size": 400} if spec["tokenizer"].get("vocab_size") else {})}
        trained = train.train_tokenizer(tok_spec, review_texts)
        folder = tmp_path / family
        _save_folder(folder, spec["architecture"], trained)
        stream = train.encode_stream(trained, review_texts[:3])
        train.check_saved_tokenizer(folder, trained, stream, family)  # raises on a mismatch


def test_saved_tokenizer_check_catches_a_class_that_ignores_tokenizer_json(review_texts, tmp_path):
    """transformers loads Qwen2Tokenizer for qwen2 folders, which re-tokenizes a unigram tokenizer into bytes."""
    trained = train.train_tokenizer({"kind": "unigram_bytes", "vocab_size": 400, "eos": "<|endoftext|>", "unk": "<unk>"},
                                    review_texts)
    _save_folder(tmp_path, "qwen2", trained)
    with pytest.raises(RuntimeError, match="tokenizes differently"):
        train.check_saved_tokenizer(tmp_path, trained, train.encode_stream(trained, review_texts[:3]), "q")


def test_encode_stream_prefixes_every_document():
    trained = train.train_tokenizer({"kind": "bytes", "eos": "<|endoftext|>"}, ["ab"])
    stream = train.encode_stream(trained, ["hi", "é"])
    eos = trained.eos_token_id
    assert stream.tolist() == [eos, *trained("hi")["input_ids"], eos, *trained("é", add_special_tokens=False)["input_ids"]]
    assert len(stream) == 1 + 2 + 1 + 2  # é is two UTF-8 bytes


def test_lr_schedule_warms_up_then_decays_to_floor():
    settings = {"lr": 1e-2, "warmup_frac": 0.1, "min_lr_frac": 0.1}
    lrs = [train.lr_at(s, 100, settings) for s in range(101)]
    assert lrs[0] == pytest.approx(1e-3) and max(lrs) == pytest.approx(1e-2)
    assert lrs[100] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


# ----------------------------------------------------------------------------- tiny pool
def _tiny_pool(tmp_path: Path, families: dict, sizes: list[tuple[int, int, int]], tokens: int = 3072) -> Path:
    models = []
    for family in families:
        for d, layers, heads in sizes:
            models.append({"id": str(tmp_path / "models" / f"{family}-d{d}"), "family": family,
                           "params_b": d * 1e-6, "d_model": d, "n_layers": layers, "n_heads": heads})
    pool = {"name": "tiny", "training": {"tokens": tokens, "context": 32, "batch_size": 4, "log_every": 2,
                                          "checkpoint_every": 3, "threads": 1, "lr": 1e-2},
            "families": families, "models": models}
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump(pool))
    return path


@pytest.fixture(scope="module")
def eval_file(tmp_path_factory) -> Path:
    """A small held-out set: lee-corpus test articles (the mixtures below train on reviews / lee_background)."""
    texts = [text for doc_id, text in corpora.lee_news_docs() if doc_id.startswith("lee:lee:")][:12]
    path = tmp_path_factory.mktemp("evalset") / "eval.jsonl"
    pd.DataFrame({"text_id": [f"t{i:02d}" for i in range(len(texts))], "text": texts, "source": "lee"}).to_json(
        path, orient="records", lines=True, force_ascii=False)
    return path


TINY_FAMILIES = {
    "a": {"architecture": "gpt2", "tokenizer": {"kind": "byte_bpe", "vocab_size": 300, "eos": "<|endoftext|>"},
          "data_mix": [{"source": "reviews"}]},
    "b": {"architecture": "llama", "tokenizer": {"kind": "bytes", "bos": "<s>", "eos": "</s>"},
          "data_mix": [{"source": "lee_news", "max_bytes": 40000}]},
}


def test_training_is_deterministic_and_resumes_exactly(tmp_path, eval_file):
    """A build killed mid-model and resumed ends with the same weights as an uninterrupted one."""
    pool_path = _tiny_pool(tmp_path, {"a": TINY_FAMILIES["a"]}, [(16, 1, 2)])
    pool = train.load_pool_config(pool_path)
    entry = pool["models"][0]
    root = tmp_path / "models"
    first = train.train_model(pool, entry, root, tmp_path / "logs1", eval_file)
    weights_first = {k: v.clone() for k, v in _load_weights(Path(entry["id"])).items()}
    # second run: a fresh log dir and folder; stopped after 5 steps, then resumed
    import shutil

    shutil.rmtree(entry["id"])
    assert train.train_model(pool, entry, root, tmp_path / "logs2", eval_file, stop_after_steps=5) is None
    ckpt = Path(entry["id"] + ".ckpt") / "state.pt"
    assert ckpt.is_file() and not Path(entry["id"]).exists()
    assert torch.load(ckpt, weights_only=False)["step"] == 5
    second = train.train_model(pool, entry, root, tmp_path / "logs2", eval_file)
    weights_second = _load_weights(Path(entry["id"]))
    assert weights_first.keys() == weights_second.keys()
    for key in weights_first:
        assert torch.equal(weights_first[key], weights_second[key]), key
    assert first["val_loss"] == second["val_loss"]
    assert not ckpt.exists()
    log = pd.read_csv(tmp_path / "logs2" / f"{train.model_name(entry)}.csv")
    assert log["step"].iloc[-1] == first["steps"] == 3072 // (4 * 32)
    # training lowered the loss below the uniform-guess level ln(V)
    assert first["val_loss"] < np.log(first["vocab_size"])


def _load_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_tiny_pool_build_score_analyse(tmp_path, eval_file):
    """2 families x 2 sizes: train -> score (scoring CLI API) -> loss matrix -> oracle pairs -> frontiers."""
    from mmlaw_utils.analysis import frontier, oracle
    from mmlaw_utils.scoring.run import ScoreRequest, score_model

    pool_path = _tiny_pool(tmp_path, TINY_FAMILIES, [(8, 1, 1), (32, 1, 2)], tokens=4096)
    table = train.build_pool(pool_path, log_dir=tmp_path / "logs", eval_dataset=eval_file)
    assert len(table) == 4 and set(table["family"]) == {"a", "b"}
    assert (tmp_path / "models_table.csv").is_file()
    cache_dir = tmp_path / "scores"
    for model_id in table["model"]:
        run = score_model(ScoreRequest(model=model_id, dataset=str(eval_file), cache_dir=cache_dir, device="cpu"),
                          progress=False)
        assert run.provenance["complete"] and len(run.results) == 12
        # the trained vocabulary size and the model's parameters are what the cache records
        row = table[table["model"] == model_id].iloc[0]
        assert run.provenance["params_total"] == row["params"]
    pool_df = pd.DataFrame({"model": table["model"], "family": table["family"], "params_nominal": table["params"]})
    lm = assemble.assemble_loss_matrix(cache_dir, pool_df)
    L = lm.to_array()
    assert L.shape == (4, 12) and np.isfinite(L).all() and (L > 0).all()
    pairs = oracle.pair_oracle_losses(L)
    singles = L.mean(axis=1)
    assert np.allclose(np.diag(pairs), singles)
    for i in range(4):
        for j in range(4):
            assert pairs[i, j] <= min(singles[i], singles[j]) + 1e-9
            assert pairs[i, j] == pytest.approx(np.minimum(L[i], L[j]).mean())
    groups = frontier.collaboration_groups(L, lm.params, lm.families)
    assert len(groups["single"]) == 4 and len(groups["same_family"]) == 2 and len(groups["cross_family"]) == 4


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


def test_a_model_another_worker_trains_is_left_to_it(tmp_path, capsys):
    """A build finds the model's train lock held: it trains nothing and its summary names the model."""
    eval_file = tmp_path / "eval.jsonl"
    pd.DataFrame({"text_id": ["t0"], "text": ["held-out text"]}).to_json(eval_file, orient="records", lines=True)
    root = tmp_path / "models"
    root.mkdir()
    pool = {
        "name": "tiny-locked", "tokenizer_dir": str(tmp_path / "tokenizers"),
        "training": {"context": 32, "batch_size": 4, "threads": 1},
        "mixtures": {"own": [{"source": "reviews", "max_bytes": 60000}]},
        "families": {"a": {"architecture": "llama", "mixture": "own",
                           "tokenizer": {"kind": "byte_bpe", "vocab_size": 300, "eos": "<|endoftext|>"}}},
        "models": [{"id": str(root / "a-d8"), "family": "a", "params_b": 1e-6, "d_model": 8, "n_layers": 1,
                    "n_heads": 1, "train_tokens": 2048}],
    }
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump(pool))
    with train.exclusive(root / "a-d8.train.lock", wait=False) as held:
        assert held
        train.build_pool(path, log_dir=tmp_path / "logs", eval_dataset=eval_file)
    out = capsys.readouterr().out
    assert "[a-d8] another worker is training it" in out
    assert "0 model(s) ready" in out and "1 left to other workers: a-d8" in out
    assert not (root / "a-d8" / "config.json").exists()


# ----------------------------------------------------------------------------- committed records
def _committed_table() -> pd.DataFrame:
    return pd.read_csv(DATA_DIR / "models_table.csv")


def test_committed_caches_are_complete_and_match_the_text_set(pool):
    profile = load_profile("minipool")
    texts = load_texts(profile.dataset)
    fingerprint = dataset_fingerprint(texts["text_id"], texts["text"])
    n_bytes = texts["text"].map(lambda t: len(t.encode("utf-8"))).to_numpy()
    for entry in pool["models"]:
        path = cache.cache_path(profile.cache_dir, entry["id"], fingerprint)
        assert path.is_file(), f"no cache for {entry['id']} matching the text set ({path.name})"
        results, provenance = cache.read_cache(path)
        assert provenance["complete"] is True and provenance["model"] == entry["id"]
        assert provenance["dataset_fingerprint"] == fingerprint
        assert results["text_id"].tolist() == texts["text_id"].tolist(), entry["id"]
        assert np.isfinite(results["nll"]).all() and (results["nll"] > 0).all()
        assert (results["n_bytes"].to_numpy() == n_bytes).all(), entry["id"]


def test_committed_models_table_matches_the_pool_and_logs(pool):
    table = _committed_table()
    entries = {e["id"]: e for e in pool["models"]}
    assert sorted(table["model"]) == sorted(entries), "models_table.csv must list every model of the pool"
    for column in ("model", "family", "params", "arm", "tokens_trained", "architecture", "tokenizer", "data_mix"):
        assert table[column].notna().all(), column
    for row in table.itertuples():
        entry = entries[row.model]
        assert row.arm == entry["arm"] and row.family == entry["family"], row.model
        assert row.tokens_trained == entry["train_tokens"], row.model
        assert (row.d_model, row.n_layers, row.batch_size) == (entry["d_model"], entry["n_layers"],
                                                                 entry["train_batch_size"])
        assert row.lr == pytest.approx(entry["train_lr"]), row.model
        log = pd.read_csv(DATA_DIR / "train_logs" / f"{row.name}.csv")  # the committed loss curve
        curve = log["train_loss"].dropna().to_numpy()
        assert log["tokens"].max() == row.tokens_trained
        assert curve[-1] < curve[0], f"{row.name}: training loss did not fall"
        summary = json.loads((DATA_DIR / "train_logs" / f"{row.name}.json").read_text())
        assert summary["params"] == row.params and summary["model"] == row.model
        assert np.isfinite(row.train_seconds) and row.train_seconds > 0
        assert (DATA_DIR / "tokenizers" / row.base_family / "tokenizer.json").is_file()


def test_held_out_loss_falls_with_size_in_every_family(pool):
    """Mean NLL per held-out text decreases with parameters within each family, control arms included."""
    profile = load_profile("minipool")
    texts = load_texts(profile.dataset)
    fingerprint = dataset_fingerprint(texts["text_id"], texts["text"])
    rows = []
    for entry in pool["models"]:
        results, provenance = cache.read_cache(cache.cache_path(profile.cache_dir, entry["id"], fingerprint))
        rows.append({"family": entry["family"], "params": provenance["params_total"], "nll": results["nll"].mean()})
    for family, group in pd.DataFrame(rows).sort_values("params").groupby("family"):
        assert (np.diff(group["nll"].to_numpy()) < 0).all(), (family, group.to_dict("records"))


def test_committed_tokenizers_match_the_pool_specs(pool):
    """data/minipool/tokenizers/<family> holds each family's tokenizer, trained on its own stream and reused."""
    from transformers import AutoTokenizer

    store = REPO_ROOT / pool["tokenizer_dir"]
    for family, spec in pool["families"].items():
        folder = store / family
        stream = json.loads((DATA_DIR / "train_data" / f"{family}.json").read_text())
        stored = json.loads((folder / "spec.json").read_text())
        assert stored == {**spec["tokenizer"], "trained_on_sha256": stream["data"]["sha256"]}, family
        tokenizer = AutoTokenizer.from_pretrained(folder)
        ids = tokenizer(PROBE, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == PROBE, family
        assert len(tokenizer) == (spec["tokenizer"].get("vocab_size") or 257), family
        expected_prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        assert prefix_token(tokenizer)[0] == expected_prefix, family


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
    monkeypatch.setattr(corpora, "SOURCE_REGISTRIES", (*corpora.SOURCE_REGISTRIES, "fake_registry"))  # allowed by name
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

    profile = load_profile("minipool")
    monkeypatch.setattr(type(profile), "cache_dir", property(lambda self: tmp_path / "scores"))
    entry = {"id": "models/minipool/x-d4l2"}
    assert not train.scoring_elsewhere(entry, profile, "f" * 64)
    held = cache.lock_path(cache.cache_path(tmp_path / "scores", entry["id"], "f" * 64))
    with train.exclusive(held, wait=False) as mine:
        assert mine and train.scoring_elsewhere(entry, profile, "f" * 64)
    assert not train.scoring_elsewhere(entry, profile, "f" * 64)


def test_models_table_keeps_to_the_pool_models_when_given(tmp_path):
    """Logs of models a larger recipe built ahead stay out of a smaller pool's models table."""
    for name, params in (("a", 10), ("b", 20)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"model": f"models/x/{name}", "family": "f", "params": params}))
    every = train.write_models_table(tmp_path, tmp_path / "all.csv")
    kept = train.write_models_table(tmp_path, tmp_path / "kept.csv", {"models/x/b"})
    assert every["model"].tolist() == ["models/x/a", "models/x/b"] and kept["model"].tolist() == ["models/x/b"]
    assert pd.read_csv(tmp_path / "kept.csv")["model"].tolist() == ["models/x/b"]


def test_score_pool_names_models_that_are_not_in_the_pool():
    """A --model the pool does not list is an error naming it, not a silent 'scored 0 models'."""
    with pytest.raises(ValueError, match=r"models \['no-such-model'\] are not in pool"):
        train.score_pool(REPO_ROOT / "configs" / "pools" / "minipool.yaml", "minipool", only=["no-such-model"])
