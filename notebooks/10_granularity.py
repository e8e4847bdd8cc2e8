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
# # 10 · Where collaboration gains live: the oracle from text to token (§1, §2.3, §6.5)
#
# The paper's oracle is per token in §1 ("per-token cross-entropy loss equals the minimum achieved by any pool
# model") and per text from §2.3 on (eqs. 3–4); §6.5 leaves other evaluation metrics to future work. With
# byte-aligned token losses every text is cut into segments (text, line, sentence, word, and the *common token*:
# the finest cut whose boundaries are token boundaries of every model). A model's segment loss is the sum of its
# token losses that end in the segment, so segments sum to eq. 1's text loss at every granularity, and the oracle
# of a subset $S$ at granularity $g$ is
#
# $$\mathcal{L}^{g}_{\text{oracle}}(S, x) = \sum_{s \in g(x)} \min_{M_i \in S} \mathcal{L}(M_i, s) \quad\text{(nats)},$$
#
# with $g = $ text giving eq. 3. A minimum over segments is not a probability model: the finer the segments, the
# more it beats any real system, because it never pays for choosing. Its realizable counterpart here is the
# **fixed-share switching mixture** (Herbster & Warmuth 1998): each segment is predicted by mixing the models'
# segment probabilities, $-\log \sum_m w_m e^{-\mathcal{L}(M_m, s)}$, with weights updated causally (Bayes, then a
# share $\alpha$ spread uniformly); $\alpha$ is fitted on one half of the texts (split by source document) and every
# comparison is on the other half. Then, at each granularity, Table 1's fits and verdicts.

# %% tags=["parameters"]
profile = "minipool"  # a profile with segment losses in <data_dir>/segments/
data_dir = None  # override the profile's data folder (loss matrix and segments read there, outputs written there)
figures_dir = None  # override the profile's figure folder
n_bootstrap = 200  # resamples (texts, source documents) for the intervals
seed = 0  # fit/evaluation split and resamples
level = 0.95  # interval level
params_unit = 1e9  # P in units of this many parameters for the fits of eq. 7
update_readme = None  # None: only when the run writes into the profile's own data folder

# %%
from pathlib import Path

from IPython.display import Image, Markdown, display

from mmlaw_utils.config import REPO_ROOT, load_profile, resolve_run_paths
from mmlaw_utils.report import granularity as report
from mmlaw_utils.scoring.assemble import load_loss_matrix
from mmlaw_utils.texts import load_texts

paths = resolve_run_paths(profile, data_dir=data_dir, figures_dir=figures_dir)
spec = load_profile(profile)
lm = load_loss_matrix(paths.data_dir)
results = report.compute_results(lm, load_texts(spec.dataset, spec.n_texts), paths.data_dir, profile,
                                 n_bootstrap=n_bootstrap, seed=seed, level=level, params_unit=params_unit)
if results is None:
    display(Markdown(report.not_available_markdown(paths.data_dir, profile)))
else:
    written = report.write_outputs(results, paths)
    print(f"{lm.shape[0]} models x {lm.shape[1]} texts; granularities: {', '.join(results.segmentations)}")
    display(results.sum_check)

# %% [markdown]
# ## Oracle and switching mixture at every granularity (evaluation half)
#
# Best single model, best pair and all-model oracle, the Bayesian mixture (α = 0: whole-text posterior
# weights) and the switching mixture; nats per text, bits per byte in parentheses. `sum_check` above is the largest
# relative difference between a model's segment sums and its text loss in the loss matrix.

# %%
if results is not None:
    display(Markdown(report.results_markdown(results)))

# %% [markdown]
# Loss against granularity at three budgets (log-spaced from the smallest model to the whole pool): the best
# subset within the budget at that granularity (its oracle, solid) and the switching mixture of its members
# (dashed); bands are percentile intervals over resampled source documents of the evaluation half, the subset held
# fixed. In a pool of more than 12 models the exact any-size search over segment columns is too slow, so the
# frontier there is over single models and pairs (the markdown above says which).

# %%
if results is not None:
    display(Image(filename=str(written["granularity_budgets_fig"])))

# %% [markdown]
# One text, each word coloured by the member of a pair that wins it (the pair with the largest word-level gain over
# its better member; the text with the largest gain among those up to 700 bytes).

# %%
if results is not None and "granularity_winners_fig" in written:
    display(Image(filename=str(written["granularity_winners_fig"])))

# %% [markdown]
# ## Who wins the segments: shares per model, overall and per domain
#
# Share of segments and of bytes each model wins in the all-model oracle (ties split).

# %%
if results is not None:
    shares = results.win_shares[results.win_shares["domain"] == "all"]
    display(shares.pivot_table(index="model", columns="granularity", values="byte_share")
            .reindex(columns=results.segmentations))
    display(results.win_shares.pivot_table(index=["granularity", "domain"], columns="model", values="segment_share")
            .reindex(results.segmentations, level=0))

# %% [markdown]
# ## Table 1 at each granularity; same- against cross-family pairs
#
# Eq. 7 on the Pareto frontiers of single models, same-family and cross-family pairs, the widest of four intervals
# (text and source-document bootstrap, model jackknife, profile likelihood) and the verdict rules of
# `analysis/claims.py` (the equal-budget claims are not evaluated here). Then the mean oracle gain of a pair over
# its better member by family relation: at word level this says whether cross-family pairs gain more than
# same-family ones.

# %%
if results is not None:
    display(Markdown(report.table1_markdown_by_granularity(results)))
    display(results.claims.pivot_table(index="claim", columns="granularity", values="verdict", aggfunc="first")
            .reindex(columns=results.segmentations))
    display(results.relations.pivot_table(index="relation", columns="granularity", values="mean_gain")
            .reindex(columns=results.segmentations))

# %%
own_folder = data_dir is None or Path(data_dir).resolve() == spec.data_dir
if results is not None and (update_readme or (update_readme is None and own_folder)):
    print("README region updated:", report.update_readme(REPO_ROOT / "README.md", results, written))
