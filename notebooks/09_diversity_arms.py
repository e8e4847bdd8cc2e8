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
# # 09 · Which diversity pays? Cross-family gains in the miniature pool's arms (§3.3, §4.4, §5.2, §6.4)
#
# The paper reads its larger cross-family gains as evidence that "architectural and training diversity"
# drives collaboration (§4.4, §5.2), but in a pool of released models families differ in everything at
# once (§6.4). The miniature pool separates the sources with three arms of models trained by one recipe:
# **main** (each family its own architecture, tokenizer and domain-weighted data mixture), **same_data**
# (the same architectures and tokenizers on one shared mixture: architecture + tokenizer diversity only)
# and **seed** (Llama retrained with two more seeds, plus the main-arm Llama as the first seed: the noise
# floor). Within an arm, at each size index, every pair of families is compared through the oracle gain of
# eqs. (3–4) over the pair's better member,
#
# $$\mathrm{gain}(a,b) = \min\big(\bar{\mathcal{L}}_a, \bar{\mathcal{L}}_b\big) - \tfrac{1}{N}\textstyle\sum_x \min\big(\mathcal{L}_a(x), \mathcal{L}_b(x)\big) \quad\text{(nats per text, } \ge 0),$$
#
# over all held-out texts and over each domain's texts; and, in the main arm, which family wins each
# domain's texts. This stage reads the score caches of **every** arm (the profile key `arms` restricts
# only stages 02–07 to the main arm).

# %% tags=["parameters"]
profile = "minipool"  # a profile whose pool has an arm column (main, same_data, seed)
data_dir = None  # override the profile's data folder (score caches in data_dir/scores; outputs written there)
figures_dir = None  # override the profile's figure folder
n_bootstrap = 1000  # resamples of the source documents (within each domain) for the intervals
seed = 0  # seed of the resamples
level = 0.95  # interval level

# %%
from IPython.display import Image, Markdown, display

from mmlaw_utils.config import resolve_run_paths
from mmlaw_utils.pool import load_pool
from mmlaw_utils.report.arms import arms_frames, family_mixtures, scored_loss_matrix, summary_markdown, write_outputs

paths = resolve_run_paths(profile, data_dir=data_dir, figures_dir=figures_dir)
lm, texts = scored_loss_matrix(profile, paths.cache_dir)
frames = arms_frames(lm, texts, load_pool(paths.pool), n_bootstrap=n_bootstrap, seed=seed, level=level)
print(f"{profile}: {lm.shape[0]} scored models x {lm.shape[1]} texts")
frames["coverage"]

# %% [markdown]
# ## Gain per arm, overall and per domain; which domains each family wins
#
# Arms are compared at the size indexes they all have (the seed arm has the fewest); the second table shows
# each arm at every size it has. Intervals resample the held-out set's source documents within each domain
# (the domains' composition is fixed by design): they carry the uncertainty of which texts were drawn, not of
# which models were trained (one seed per main-arm model). The last two tables are the main arm's per-domain
# winners, at each size where all five families are scored.

# %%
report = summary_markdown(frames["summary"], frames["wins"], frames["every_size"], frames["coverage"],
                          family_mixtures(lm.models), frames["intervals"])
written = write_outputs(frames, paths, report)
display(Markdown(report))

# %%
display(Image(filename=str(written["figure"])))

# %% [markdown]
# ## What this experiment can and cannot show
#
# - **Equal size is equal budget only approximately.** The members of a pair share a size index, hence the
#   recipe (tokens per parameter, schedule, depth), but their parameter counts differ (tokenizers of
#   different vocabularies, widths rounded to whole heads); the largest ratio is printed under the first
#   table. And the gain is over the pair's better member, whose budget is half the pair's: it measures
#   complementarity, not a win at equal total budget (that comparison is notebook 05's `equal_budget.csv`).
# - **The seed arm is the noise floor, for one family.** Two runs of one recipe on one mixture differ only by
#   their seed; a gain no larger than the seed arm's is what retraining alone gives. It is measured on
#   Llama alone, at its three sizes, so it is a floor for Llama, not for every architecture.
# - **main − same_data is the data mixture's share only if the sources add up.** same_data keeps the
#   architectures and tokenizers and removes the data difference; any interaction (a tokenizer that helps more
#   on its own domain's data) is not separated by two arms.
# - **A gain over the better member rewards members of equal quality.** Seed replicas are equally good by
#   construction, so they split the texts between them; two architectures trained on the same data (same_data)
#   usually differ in quality at one size, and a pair with a clearly better member gains little however
#   different its members are. A same_data gain below the seed floor in a domain says that the architectures
#   differ in quality there, not that they are less diverse.
# - **Per-domain wins follow the training mixtures by construction.** Each main-arm family was given more of
#   some domains (table above: its mixture); a family winning those domains confirms the design rather than
#   discovering a property of the architecture. The per-domain gains are within-domain complementarity; the
#   gain over all texts also contains switching between domains, which a router by domain would already get.
# - **The pool is tiny, and the intervals cover the texts only.** Models of thousands to about a million
#   parameters trained on 20 tokens per parameter; the intervals cover the choice of texts only, min and max
#   over family pairs (figure, right) show the spread across pairs, and the seed arm is the only measure of
#   training noise. When the build is incomplete the tables cover only the scored models (a partial-pool line
#   above then says how many).
