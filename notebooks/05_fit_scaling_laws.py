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
# # 05 · Fitting the Law of Multi-model Collaboration (§2.6, §3.5, Table 1)
#
# On each Pareto frontier we fit eq. (7), $\mathcal{L}(P) = A\,P^{-\alpha} + \mathcal{L}_\infty$, by nonlinear
# least squares in the original loss domain (P in billions by default, as in eqs. 8–10). Confidence intervals
# come from a bootstrap over **texts**: each resample recomputes every single and pair oracle mean, the
# three frontiers and the three fits, so they carry the uncertainty of a finite evaluation set.
# The table shows our fits beside the paper's Table 1 (in parentheses); with a different pool and text
# set only the qualitative pattern is expected to carry over (§6.4).

# %% tags=["parameters"]
profile = "minipool"
data_dir = None
params_unit = 1e9  # P in units of this many parameters (1e9: billions, as in the paper)
n_bootstrap = 1000  # text resamples for the confidence intervals
seed = 0
level = 0.95  # confidence level of the intervals

# %%
import pandas as pd
from IPython.display import Markdown, display

from mmlaw_utils.analysis.bootstrap import bootstrap_group_fits
from mmlaw_utils.analysis.lossmatrix import load_loss_matrix
from mmlaw_utils.config import require, resolve_run_paths
from mmlaw_utils.report.tables import (fit_groups, fit_to_dict, groups_from_frontiers_table, table1_frame, table1_markdown,
                                write_fits_json, write_frame, write_table1)

paths = resolve_run_paths(profile, data_dir=data_dir)
lm = load_loss_matrix(paths.data_dir)
groups = groups_from_frontiers_table(pd.read_parquet(require(paths.output("frontiers"), "04_frontiers")))
fits = fit_groups(groups, params_unit=params_unit)
write_fits_json(fits, paths.output("fits"), profile=profile, params_unit=params_unit, n_bootstrap=n_bootstrap,
                seed=seed, level=level, n_models=lm.shape[0], n_texts=lm.shape[1])
pd.DataFrame({group: fit_to_dict(fit) for group, fit in fits.items()}).T.reindex(
    columns=["A", "alpha", "L_inf", "A_se", "alpha_se", "L_inf_se", "r2", "rmse", "n_points", "status"])

# %% [markdown]
# Bootstrap over texts (this is the slow part: `n_bootstrap` × 3 fits).

# %%
boot = bootstrap_group_fits(lm.to_array(), lm.params, lm.families, n_bootstrap=n_bootstrap, seed=seed,
                            params_unit=params_unit, progress=True)
write_frame(boot, paths.output("bootstrap"))
table1 = table1_frame(groups, fits, boot, level=level)
caption = (f"**Table 1** ({paths.profile}: {lm.shape[0]} models, {lm.shape[1]} texts). Fits of eq. 7 on the "
           f"Pareto points, P in units of {params_unit:g} parameters; [{level:.0%} bootstrap interval over "
           f"{n_bootstrap} text resamples]; (the paper's value).")
write_table1(table1, paths.data_dir, caption=caption)
display(Markdown(table1_markdown(table1, caption)))
