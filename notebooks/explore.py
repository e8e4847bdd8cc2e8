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
# # Explore the cached losses: oracle ensembles of any subset (§2.3–§2.5, eqs. 3–5; §6.1)
#
# Pick any models of a profile's pool, by name (grouped by arm and family), or with a preset: the best
# single model, a whole family, or the point of the exact any-size oracle frontier with total parameters
# $P \le$ the budget slider. For the selection $\mathcal{S}$ the explorer shows its total $P$ (eq. 5), its
# oracle loss $\mathbb{E}_x \min_{M_i\in\mathcal{S}} \mathcal{L}(M_i, x)$ (eq. 4, nats per text), the gain over
# its best member alone, the realizable Bayesian mixture $-\log \sum_i w_i e^{-\mathcal{L}_i(x)}$ (§6.1), and each
# member's win share overall and per domain; the frontier plot marks it among the single models, same- and
# cross-family pairs and the exact frontier over all subsets. Below, texts are listed by the selection's gain
# over its best member; pick one to see its losses and its text (coloured by the winning member where
# segment-level losses exist). Run it in JupyterLab or as an app: `voila notebooks/explore.ipynb`.

# %% tags=["parameters"]
profile = "minipool"

# %%
from IPython.display import display

from mmlaw_utils.report.explorer import Explorer

explorer = Explorer(profile)
display(explorer.widget())

# %% [markdown]
# The same numbers from Python: `explorer.select([...model ids...])`, then `explorer.numbers` (eq. 4 oracle,
# mixture), `explorer.shares` (win shares) and `explorer.gains` (texts by gain).

# %%
explorer.numbers
