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
# # 09 · Which diversity pays? Cross-family gains in the miniature pool's arms, routing and seeds (§3.3, §4.4, §5.2, §6.4)
#
# The paper reads its larger cross-family gains as evidence that "architectural and training diversity"
# drives collaboration (§4.4, §5.2), but in a pool of released models families differ in everything at
# once (§6.4). The miniature pool separates the sources with arms of models trained by one recipe:
# **main** (each family its own architecture, tokenizer and domain-weighted data mixture), **same_data**
# (the same architectures and tokenizers on one shared mixture: architecture + tokenizer diversity only)
# and **seed** (every model of main and same_data at sizes 1–3 retrained with two more seeds; `seed(X)` pairs
# two replicas of one model of arm X: the retraining noise floor). Within an arm, at each size index, every
# pair of families is compared through the oracle gain of eqs. (3–4) over the pair's better member,
#
# $$\mathrm{oracle}(a,b) = \min\big(\bar{\mathcal{L}}_a, \bar{\mathcal{L}}_b\big) - \tfrac{1}{N}\textstyle\sum_x \min\big(\mathcal{L}_a(x), \mathcal{L}_b(x)\big) \quad\text{(nats per text, } \ge 0),$$
#
# and split into a **per-domain router** (the better member chosen per domain, not per text),
# $\mathrm{router} = \min(\bar{\mathcal{L}}_a, \bar{\mathcal{L}}_b) - \sum_d \tfrac{n_d}{N}\min(\bar{\mathcal{L}}_{a,d}, \bar{\mathcal{L}}_{b,d})$,
# and the **within-domain** gain, oracle − router $= \sum_d \tfrac{n_d}{N}\,\mathrm{oracle}_d$. A pair whose
# members were trained on different domains can gain a lot by routing alone, which needs no per-text
# collaboration. Intervals resample the source documents within domains **and** which replica (seed) stands in
# for each model, wherever seeds are scored. This stage reads the score caches of **every** arm (the profile key
# `arms` restricts only stages 02–07 to the main arm).

# %% tags=["parameters"]
profile = "minipool"  # a profile whose pool has an arm column (main, same_data, seed)
data_dir = None  # override the profile's data folder (score caches in data_dir/scores; outputs written there)
figures_dir = None  # override the profile's figure folder
n_bootstrap = 1000  # resamples of the source documents (within each domain) and of the seed replicas
seed = 0  # seed of the resamples
level = 0.95  # interval level

# %%
from IPython.display import Image, Markdown, display

from mmlaw_utils.pipeline import check_parameter_values
from mmlaw_utils.config import resolve_run_paths
from mmlaw_utils.pool import load_pool
from mmlaw_utils.report.arms import (arms_frames, family_mixtures, scored_loss_matrix, seed_sizes, summary_markdown,
                                     write_outputs)

check_parameter_values({"n_bootstrap": n_bootstrap, "seed": seed, "level": level})  # papermill runs too, not only `run`
paths = resolve_run_paths(profile, data_dir=data_dir, figures_dir=figures_dir)
lm, texts = scored_loss_matrix(profile, paths.cache_dir)
pool = load_pool(paths.pool)
frames = arms_frames(lm, texts, pool, n_bootstrap=n_bootstrap, seed=seed, level=level)
print(f"{profile}: {lm.shape[0]} scored models x {lm.shape[1]} texts")
frames["coverage"]

# %% [markdown]
# ## Three gains per arm, size-matched pairs, per domain; domain winners and their seed spread
#
# Arms are compared at the size indexes they all have. The first table is the answer to "is it diversity or
# routing?": the router column is what choosing one member per domain already gives. Verdicts on a difference
# with a seed arm wait until every family of that arm has seeds scored (the line above the tables says which
# have). The size-matched rows keep only pairs within 1.25× in parameters, since equal size index is not equal
# budget. The winner table marks a domain winner that some combination of seed replicas changes.

# %%
report = summary_markdown(frames, family_mixtures(lm.models), seed_sizes(pool, lm.models))
written = write_outputs(frames, paths, report)
display(Markdown(report))

# %%
display(Image(filename=str(written["figure"])))

# %% [markdown]
# ## What this experiment can and cannot show
#
# - **Equal size is equal budget only approximately.** The members of a pair share a size index, hence the
#   recipe (tokens per parameter, schedule, depth), but their parameter counts differ (tokenizers of
#   different vocabularies, widths rounded to whole heads); the size-matched rows keep pairs within 1.25×. And
#   the gain is over the pair's better member, whose budget is half the pair's: it measures complementarity,
#   not a win at equal total budget (that comparison is notebook 05's `equal_budget.csv`).
# - **Routing is not collaboration.** The oracle gain over all texts contains switching between domains,
#   which a router that reads the domain label gets without combining the models per text; only the
#   within-domain column measures what the paper's per-text oracle adds to that.
# - **The seed arm is the noise floor, where it is scored.** Two runs of one recipe on one mixture differ only by
#   their seed; a gain no larger than the seed arm's is what retraining alone gives. A verdict on
#   "architecture adds to retraining noise" needs seeds of all five families on the shared mixture; until
#   they are scored the table says so instead of giving one.
# - **main − same_data is the data mixture's share only if the sources add up.** same_data keeps the
#   architectures and tokenizers and removes the data difference; any interaction (a tokenizer that helps more
#   on its own domain's data) is not separated by two arms.
# - **A gain over the better member rewards members of equal quality.** Seed replicas are equally good by
#   construction, so they split the texts between them; two architectures trained on the same data usually
#   differ in quality at one size, and a pair with a clearly better member gains little however different its
#   members are.
# - **Per-domain wins follow the training mixtures by construction**, and at small sizes a reseed can flip
#   them (marked in the winner table): a winner that flips says nothing about the architecture.
# - **The pool is tiny.** Models of thousands to about a million parameters trained on 20 tokens per
#   parameter; with two extra seeds per model the seed resampling is coarse (three replicas), and where a
#   family has no seed its intervals cover the texts only. When the build is incomplete the tables cover only
#   the scored models (a partial-pool line above then says how many).
