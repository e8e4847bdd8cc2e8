"""Miniature pool: config validity, tokenizers, deterministic resumable training, committed caches,
and a tiny pool going through build -> score -> analysis (all on CPU, in tmp dirs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from mmlaw_utils.scoring import assemble, cache

from mmlaw_utils.minipool import corpora, train
from mmlaw_utils.scoring.models import prefix_token
from mmlaw_utils.config import REPO_ROOT, load_profile
from mmlaw_utils.texts import dataset_fingerprint, load_texts

POOL_PATH = REPO_ROOT / "configs" / "pools" / "minipool.yaml"
DATA_DIR = REPO_ROOT / "data" / "minipool"
NOMINAL_SPECIALS = {"bytes": 256}  # a raw-bytes vocabulary is 256 symbols plus its specials

PROBE = "Zürich café — naïve façade, £3,000 in 1987!\tΕλληνικά 日本語 🙂\n\n  double  spaces  "


@pytest.fixture(scope="module")
def pool_config() -> dict:
    return train.load_pool_config(POOL_PATH)


@pytest.fixture(scope="module")
def review_texts() -> list[str]:
    return [text for _, text in corpora.review_docs()]


# ----------------------------------------------------------------------------- the pool config
def test_pool_has_five_families_of_six_sizes_spanning_30x(pool_config):
    models = pd.DataFrame(pool_config["models"])
    sizes = models.groupby("family")["params_b"].agg(["count", "min", "max"])
    assert len(sizes) >= 5, sizes
    assert (sizes["count"] >= 6).all(), sizes
    assert ((sizes["max"] / sizes["min"]) >= 30).all(), sizes
    assert len(models) >= 30
    assert models["id"].is_unique
    assert all(str(m).startswith("models/minipool/") for m in models["id"])
    # the same token budget per size across families, never less for a larger model
    for _, group in models.sort_values("params_b").groupby("family"):
        assert group["train_tokens"].is_monotonic_increasing, group[["id", "train_tokens"]]
    assert models.groupby("d_model")[["train_tokens", "train_batch_size", "train_lr"]].nunique().max().max() == 1


def test_families_differ_in_architecture_tokenizer_and_data(pool_config):
    families = pool_config["families"]
    archs = [spec["architecture"] for spec in families.values()]
    tokenizers = [train.tokenizer_label(spec["tokenizer"]) for spec in families.values()]
    mixes = [corpora.mix_name(spec["data_mix"]) for spec in families.values()]
    assert len(set(archs)) == len(families), archs
    assert len(set(tokenizers)) == len(families), tokenizers
    assert len(set(mixes)) == len(families), mixes
    assert len({spec["tokenizer"]["kind"] for spec in families.values()}) >= 4
    for family, spec in families.items():
        assert spec["data_mix"][0]["source"] == "wiki", f"{family}: the prose core comes first"
        assert spec["tokenizer"].get("bos") or spec["tokenizer"].get("eos"), family


def test_nominal_params_match_instantiated_models(pool_config):
    """params_b of every entry = parameters of the model its dims build, with the spec's vocabulary."""
    for entry in pool_config["models"]:
        spec = pool_config["families"][entry["family"]]
        tok = spec["tokenizer"]
        vocab = tok.get("vocab_size") or NOMINAL_SPECIALS[tok["kind"]] + len({tok.get("bos"), tok.get("eos"), tok.get("unk")} - {None})
        config = train.model_config(spec["architecture"], vocab, entry["d_model"], entry["n_layers"], entry["n_heads"],
                                    spec["training"]["context"], 0, 0)
        model = train.build_model(config, seed=0)
        unique = {id(p): p.numel() for p in model.parameters()}
        assert sum(unique.values()) == round(entry["params_b"] * 1e9), entry["id"]
        assert entry["architecture"] == spec["architecture"]


def test_profile_points_at_the_pool_and_text_set():
    profile = load_profile("minipool")
    assert profile.pool == POOL_PATH
    assert Path(profile.dataset) == REPO_ROOT / "data" / "texts" / "wiki_heldout.jsonl"
    assert profile.data_dir == DATA_DIR and profile.figures_dir == REPO_ROOT / "figures"


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


def test_every_family_folder_reloads_its_own_tokenizer(pool_config, review_texts, tmp_path):
    """A model folder of each family's architecture + tokenizer kind loads (AutoTokenizer) to the same tokens."""
    for family, spec in pool_config["families"].items():
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


# ----------------------------------------------------------------------------- committed outputs
def test_committed_caches_are_complete_and_match_the_text_set(pool_config):
    profile = load_profile("minipool")
    texts = load_texts(profile.dataset)
    fingerprint = dataset_fingerprint(texts["text_id"], texts["text"])
    for entry in pool_config["models"]:
        path = cache.cache_path(profile.cache_dir, entry["id"], fingerprint)
        assert path.is_file(), f"no cache for {entry['id']} matching the text set ({path.name})"
        results, provenance = cache.read_cache(path)
        assert provenance["complete"] is True, entry["id"]
        assert provenance["dataset_fingerprint"] == fingerprint
        assert results["text_id"].tolist() == texts["text_id"].tolist(), entry["id"]
        assert np.isfinite(results["nll"]).all() and (results["nll"] > 0).all()
        assert (results["n_bytes"].to_numpy() == texts["text"].map(lambda t: len(t.encode("utf-8"))).to_numpy()).all()


def test_committed_models_table_and_training_logs(pool_config):
    table = pd.read_csv(DATA_DIR / "models_table.csv")
    assert sorted(table["model"]) == sorted(e["id"] for e in pool_config["models"])
    for column in ("family", "params", "architecture", "tokenizer", "data_mix", "tokens_trained"):
        assert table[column].notna().all(), column
    for row in table.itertuples():
        log = pd.read_csv(DATA_DIR / "train_logs" / f"{row.name}.csv")
        curve = log["train_loss"].dropna().to_numpy()
        assert log["tokens"].max() == row.tokens_trained
        assert curve[-1] < curve[0], f"{row.name}: training loss did not fall"
        summary = json.loads((DATA_DIR / "train_logs" / f"{row.name}.json").read_text())
        assert summary["params"] == row.params
    for family, group in table.groupby("family"):
        assert group["params"].max() / group["params"].min() >= 30, family
    # every model was trained with the recipe the pool config names now (no stale weights)
    recipe = {e["id"]: e for e in pool_config["models"]}
    for row in table.itertuples():
        entry = recipe[row.model]
        assert row.batch_size == entry["train_batch_size"], row.model
        assert row.lr == pytest.approx(entry["train_lr"]), row.model
        assert row.tokens_trained == entry["train_tokens"] // (row.batch_size * row.context) * row.batch_size * row.context
        assert (row.d_model, row.n_layers) == (entry["d_model"], entry["n_layers"]), row.model


def test_held_out_loss_falls_with_size_in_every_family(pool_config):
    """Within each family the larger model has the lower mean held-out loss (the pool is a real scaling ladder)."""
    profile = load_profile("minipool")
    texts = load_texts(profile.dataset)
    fingerprint = dataset_fingerprint(texts["text_id"], texts["text"])
    rows = []
    for entry in pool_config["models"]:
        results, provenance = cache.read_cache(cache.cache_path(profile.cache_dir, entry["id"], fingerprint))
        rows.append({"family": entry["family"], "params": provenance["params_total"], "loss": results["nll"].mean()})
    for family, group in pd.DataFrame(rows).sort_values("params").groupby("family"):
        assert group["loss"].is_monotonic_decreasing, f"{family}:\n{group}"


def test_committed_tokenizers_match_the_pool_specs(pool_config):
    """data/minipool/tokenizers/<family> holds each family's trained tokenizer, reused by a rebuild."""
    from transformers import AutoTokenizer

    store = REPO_ROOT / pool_config["tokenizer_dir"]
    for family, spec in pool_config["families"].items():
        folder = store / family
        assert json.loads((folder / "spec.json").read_text()) == spec["tokenizer"], family
        tokenizer = AutoTokenizer.from_pretrained(folder)
        ids = tokenizer(PROBE, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == PROBE, family
        expected = spec["tokenizer"].get("vocab_size") or 257
        assert len(tokenizer) == expected, family
        expected_prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        assert prefix_token(tokenizer)[0] == expected_prefix, family


def test_stored_tokenizer_is_reused_not_retrained(review_texts, tmp_path):
    spec = {"kind": "unigram_bytes", "vocab_size": 300, "eos": "<|endoftext|>", "unk": "<unk>"}
    first = train.stored_or_trained_tokenizer(spec, review_texts, tmp_path, "fam")
    assert (tmp_path / "fam" / "spec.json").is_file()
    # a different corpus would train a different tokenizer; the stored one is returned instead
    second = train.stored_or_trained_tokenizer(spec, ["zzz qqq"] * 5, tmp_path, "fam")
    assert second.get_vocab() == first.get_vocab()
    changed = train.stored_or_trained_tokenizer({**spec, "vocab_size": 280}, review_texts, tmp_path, "fam")
    assert len(changed) == 280
