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
# # 03 · Oracle losses of all model pairs (§2.3, §3.3)
#
# The oracle ensemble of a subset $\mathcal{S}$ picks, text by text, the member with the lowest loss
# (eq. 3), and its expected loss is the mean of these minima (eq. 4):
# $\mathcal{L}_{\text{oracle}}(\mathcal{S}) = \mathbb{E}_x \min_{M_i \in \mathcal{S}} \mathcal{L}(M_i, x)$.
# As in the paper, we enumerate all unordered pairs $\{M_i, M_j\}$, record their aggregated budget
# $P_i + P_j$ (eq. 5), and split them into same-family (homogeneous) and cross-family (heterogeneous) pairs.
# The per-text winners give each member's *win share*: the fraction of texts on which the oracle uses it.

# %% tags=["parameters"]
profile = "minipool"
data_dir = None

# %%
from IPython.display import Markdown, display

from mmlaw_utils.scoring.assemble import load_loss_matrix
from mmlaw_utils.analysis.oracle import oracle_loss, pair_oracle_losses, pair_win_shares
from mmlaw_utils.config import resolve_run_paths
from mmlaw_utils.report.tables import family_win_summary, pairs_table, write_frame

paths = resolve_run_paths(profile, data_dir=data_dir)
lm = load_loss_matrix(paths.data_dir)
L = lm.to_array()
pairs = pairs_table(pair_oracle_losses(L), lm.model_names, lm.families, lm.params, win_share=pair_win_shares(L))
write_frame(pairs, paths.output("pairs"))
best_single = L.mean(axis=1).min()
whole_pool = oracle_loss(L, range(L.shape[0]))
display(Markdown(
    f"{len(pairs)} pairs → `{paths.output('pairs')}`. Best single model: **{best_single:.2f}** nats/text; "
    f"oracle of the whole pool of {L.shape[0]} models (eq. 4): **{whole_pool:.2f}** nats/text."
))

# %% [markdown]
# Per group: number of pairs, mean gain of the pair over its better member (nats per text), and how evenly
# the oracle uses the two members (median share of the less-used one; share of pairs where both win ≥ 10 %).

# %%
family_win_summary(pairs)

# %% [markdown]
# The pairs with the largest gain over their better member:

# %%
pairs.sort_values("gain", ascending=False).head(10)[
    ["model_a", "model_b", "group", "params", "loss", "loss_a", "loss_b", "gain", "win_share_a", "win_share_b"]
]
