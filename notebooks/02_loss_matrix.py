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
# # 02 · The loss matrix (§2.2, §3.2)
#
# Every model $M_i$ of the pool is scored on the same held-out texts with the **summed** text-level
# cross-entropy of eq. (1), $\mathcal{L}(M_i, x) = \sum_j -\log p_{M_i}(t^{(i)}_j \mid t^{(i)}_{<j})$, in nats,
# so models with different tokenizers stay comparable. Notebook 01 (or the synthetic generator) wrote one
# score cache per model; here they are assembled into one validated models × texts loss matrix
# (same text ids everywhere, finite values, one dataset fingerprint, family and parameter count for each
# model) and saved as `loss_matrix.parquet` + `models.parquet`. The table shows eq. (2), the expected loss
# $\mathcal{L}(M_i)$ of each model. A profile with the key `arms` (the miniature pool: `[main]`) keeps only the pool's
# models in those arms, so every later stage analyses that arm alone.

# %% tags=["parameters"]
profile = "minipool"  # configs/profiles/<profile>.yaml
data_dir = None  # override the profile's data folder (None: the profile's)
pool = None  # override the pool file (None: the profile's)
dataset_fingerprint = None  # text set to assemble (None: the profile's own text set)

# %%
from IPython.display import Markdown, display

from mmlaw_utils.scoring.assemble import assemble_loss_matrix
from mmlaw_utils.config import resolve_run_paths
from mmlaw_utils.pool import load_run_pool
from mmlaw_utils.report.tables import loss_matrix_summary
from mmlaw_utils.scoring.assemble import write_loss_matrix
from mmlaw_utils.scoring.expect import profile_expectation

paths = resolve_run_paths(profile, data_dir=data_dir, pool=pool)
pool_df = load_run_pool(paths)
# every cache must name its model and hold the profile's text set and scoring settings (else: stale, listed)
expected = profile_expectation(profile, paths.cache_dir)
lm = assemble_loss_matrix(paths.cache_dir, pool_df, dataset_fingerprint=dataset_fingerprint or expected.dataset_fingerprint,
                          check_provenance=expected.check, rescore_hint=expected.rescore_hint)
saved = write_loss_matrix(lm, paths.data_dir)
n_models, n_texts = lm.shape
arms_note = f" (arms: {', '.join(paths.arms)})" if paths.arms else ""
display(Markdown(f"**{n_models} models × {n_texts} texts**{arms_note} from `{paths.cache_dir}` → `{saved[0]}`"))

# %% [markdown]
# Expected loss per model (eq. 2, nats per text), with per-token and per-byte views for orientation
# (the analysis itself uses only the summed nats).

# %%
summary = loss_matrix_summary(lm.to_array(), lm.model_names, lm.families, lm.params,
                              n_tokens=lm.to_array("n_tokens"), n_bytes=lm.to_array("n_bytes"))
summary.sort_values(["family", "params"]).reset_index(drop=True)
