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
# # 04 · Pareto-optimal frontiers (§2.5, §3.4)
#
# Each configuration is a point (aggregated parameters $P_{\text{total}}$, oracle loss). A point is
# Pareto-optimal when no other configuration of its group dominates it. **Tie rule**
# (`frontier.pareto_front`): a point is dominated when another point is *weakly better in both*
# coordinates (parameters ≤ and loss ≤) and *strictly better in at least one*. So a point with the same
# loss but more parameters than another is dominated (e.g. every pair containing a model that wins on
# every text ties in loss with that model's cheapest pair, and only the cheapest stays), while exact
# duplicates (same parameters and bit-identical loss) do not dominate each other and are all kept.
# Frontiers are extracted separately for the three groups of the paper:
# single models, pairs within a family, and pairs across families. The counts below are the
# "raw points" and "Pareto points" columns of Table 1.

# %% tags=["parameters"]
profile = "minipool"
data_dir = None
params_unit = 1e9  # parameters per unit of P in the tables (1e9: billions)

# %%
import pandas as pd

from mmlaw_utils.analysis.frontier import collaboration_groups, group_counts
from mmlaw_utils.scoring.assemble import load_loss_matrix
from mmlaw_utils.pipeline import check_parameter_values
from mmlaw_utils.config import require, resolve_run_paths
from mmlaw_utils.report.tables import frontiers_table, pair_loss_matrix, write_frame

check_parameter_values({"params_unit": params_unit})  # papermill runs too, not only `run`
paths = resolve_run_paths(profile, data_dir=data_dir)
lm = load_loss_matrix(paths.data_dir)
pairs = pd.read_parquet(require(paths.output("pairs"), "03_oracle_pairs"))
groups = collaboration_groups(lm.to_array(), lm.params, lm.families,
                              pair_losses=pair_loss_matrix(pairs, lm.shape[0]))
frontiers = frontiers_table(groups, lm.model_names, params_unit=params_unit)
write_frame(frontiers, paths.output("frontiers"))
group_counts(groups)

# %% [markdown]
# The frontier points, cheapest first, per group (`params_scaled` = $P_{\text{total}}$ / `params_unit`):

# %%
frontiers[frontiers["on_frontier"]].sort_values(["group", "params"])[["group", "models", "params_scaled", "loss"]]
