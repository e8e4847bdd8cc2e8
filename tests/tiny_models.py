"""Tiny random-init causal LMs and locally trained tokenizers for CPU tests (no network).

Reusable by any test module: ``build_tokenizer(kind)`` trains a small BPE with the
``tokenizers`` library; ``build_model(arch, tokenizer)`` makes a seeded random-init model;
``save_tiny_model(folder, arch, tokenizer_kind)`` writes both with ``save_pretrained`` so
the folder loads through ``AutoModelForCausalLM`` / ``AutoTokenizer`` like a hub model.

Tokenizer kinds:
  ``bos``      has ``<s>`` (BOS) and ``</s>`` (EOS); adds nothing itself.
  ``eos_only`` GPT-2 style: only ``<|endoftext|>``; no BOS, so the scoring prefix is EOS.
  ``auto_bos`` has BOS and its post-processor prepends ``<s>`` whenever special tokens are added.
Architectures: ``gpt2``, ``llama``, ``gpt_neox``, ``qwen2`` (32,768-entry tied vocabulary,
larger than the tokenizer, as in Qwen2's padded vocab) and ``gemma2`` (final-logit softcapping).
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

_WORDS = (
    "the of and to in is was for on that with as by at from his her an which it be are this were "
    "river mountain city empire language model scaling law parameter token ensemble oracle frontier "
    "ancient modern history science music village island bridge festival railway museum century "
    "population kingdom station university novel painter harbour cathedral tournament dialect"
).split()


def generated_corpus(n_sentences: int = 400, seed: int = 0) -> list[str]:
    """Deterministic pseudo-English sentences with digits and punctuation, for tokenizer training."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n_sentences):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 18))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 3000)))
        sentence = " ".join(words).capitalize() + rng.choice([".", ".", "!", "?", ";"])
        sentences.append(sentence)
    return sentences


def sample_texts(n: int, seed: int = 1, min_sentences: int = 1, max_sentences: int = 6) -> list[str]:
    """``n`` texts of varied length (some unicode), distinct from the tokenizer corpus seed."""
    rng = random.Random(seed)
    pool = generated_corpus(300, seed=seed + 100)
    extras = ["Zürich café — naïve façade.", "Ελληνικά 123.", "日本語のテキスト。", "tab\there\nnewline"]
    texts = []
    for i in range(n):
        parts = rng.sample(pool, rng.randint(min_sentences, max_sentences))
        if i % 5 == 0:
            parts.append(rng.choice(extras))
        texts.append(" ".join(parts))
    return texts


def build_tokenizer(kind: str = "bos", vocab_size: int = 400):
    """Train a byte-level BPE on the generated corpus and wrap it as a fast HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind not in ("bos", "eos_only", "auto_bos"):
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    specials = ["<|endoftext|>"] if kind == "eos_only" else ["<s>", "</s>", "<pad>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(generated_corpus(), trainer=trainer)
    if kind == "auto_bos":
        bos_id = tokenizer.token_to_id("<s>")
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
        )
    if kind == "eos_only":
        return PreTrainedTokenizerFast(
            tokenizer_object=tokenizer, eos_token="<|endoftext|>", unk_token=None, model_max_length=1024
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", model_max_length=1024
    )


def _config(arch: str, vocab_size: int, bos_id: int | None, eos_id: int | None, max_positions: int):
    from transformers import Gemma2Config, GPT2Config, GPTNeoXConfig, LlamaConfig, Qwen2Config

    common = dict(vocab_size=vocab_size, bos_token_id=bos_id, eos_token_id=eos_id)
    if arch == "gpt2":
        return GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=max_positions, **common)
    if arch == "llama":
        return LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=max_positions, tie_word_embeddings=False, **common,
        )
    if arch == "gpt_neox":
        return GPTNeoXConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=max_positions, **common,
        )
    if arch == "qwen2":
        return Qwen2Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=max_positions, tie_word_embeddings=True,
            **{**common, "vocab_size": max(vocab_size, 32768)},
        )
    if arch == "gemma2":
        return Gemma2Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, max_position_embeddings=max_positions,
            final_logit_softcapping=3.0, attn_logit_softcapping=50.0, sliding_window=4096, **common,
        )
    raise ValueError(f"unknown tiny architecture {arch!r}")


ARCHITECTURES = ("gpt2", "llama", "gpt_neox", "qwen2", "gemma2")


def build_model(arch: str, tokenizer, seed: int = 0, max_positions: int = 256, init_std: float = 0.2):
    """Seeded random-init causal LM of ``arch`` in fp32 eval mode, vocab sized to ``tokenizer``.

    ``init_std`` is larger than the usual 0.02 so next-token distributions are far from
    uniform and a wrong position or target shows up in the loss.
    """
    from transformers import AutoModelForCausalLM

    config = _config(arch, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, max_positions)
    config.initializer_range = init_std
    torch.manual_seed(seed)
    # Gemma2's attention softcapping has no SDPA kernel in transformers
    attention = "eager" if arch == "gemma2" else "sdpa"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation=attention)
    return model.eval()


def save_tiny_model(
    folder: str | Path, arch: str = "llama", tokenizer_kind: str = "bos", seed: int = 0, max_positions: int = 256
) -> Path:
    """Write a tiny model + tokenizer to ``folder`` (loadable with from_pretrained); return the folder."""
    folder = Path(folder)
    tokenizer = build_tokenizer(tokenizer_kind)
    model = build_model(arch, tokenizer, seed=seed, max_positions=max_positions)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
