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
# least squares in the original loss domain (P in billions by default, as in eqs. 8–10).
#
# Every parameter gets **four kinds of interval** (`uncertainty.csv`), because a bootstrap over texts alone
# ignores most of the uncertainty:
# - `text_bootstrap`: resample texts; each resample recomputes every oracle mean, the three frontiers and fits;
# - `cluster_bootstrap`: resample whole source documents (texts of one Wikipedia article are not independent);
# - `model_jackknife`: leave each model out, recompute the frontiers and refit (the choice of models);
# - `profile_likelihood`: $\{\theta : n\ln(\mathrm{SSE}(\theta)/\mathrm{SSE}_{\min}) \le \chi^2_1(\text{level})\}$,
#   the other parameters free within the fit's bounds, $n$ the number of Pareto points.
#
# Table 1 shows the **widest** of the four and names it. The notebook also compares eq. 7 with a floor-free
# power law and a log-linear law (`model_comparison.csv`), flags models whose removal moves a fit beyond its
# profile interval (`sensitivity.csv`), computes the equal-budget gain of ensembles (`equal_budget.csv`) and
# gives each of the paper's claims one verdict (`claims.csv`). Our fits stand beside the paper's Table 1 (in
# parentheses); with a different pool and text set only the qualitative pattern is expected to carry over (§6.4).

# %% tags=["parameters"]
profile = "minipool"
data_dir = None
params_unit = 1e9  # P in units of this many parameters (1e9: billions, as in the paper)
n_bootstrap = 1000  # resamples of the text and the cluster bootstrap (and of the equal-budget intervals)
seed = 0
level = 0.95  # confidence level of the intervals

# %%
import pandas as pd
from IPython.display import Markdown, display

from mmlaw_utils.analysis.bootstrap import bootstrap_group_fits
from mmlaw_utils.analysis.budget import equal_budget_table
from mmlaw_utils.analysis.claims import claims_table, verdict_counts
from mmlaw_utils.scoring.assemble import load_loss_matrix
from mmlaw_utils.analysis.model_selection import compare_forms, support_sentence
from mmlaw_utils.analysis.profile import profile_intervals
from mmlaw_utils.analysis.uncertainty import (CLUSTER_RULE, leave_one_model_out, sensitivity_table, text_clusters,
                                              uncertainty_table)
from mmlaw_utils.config import load_profile, require, resolve_run_paths
from mmlaw_utils.texts import text_field
from mmlaw_utils.report.tables import (fit_groups, fit_to_dict, groups_from_frontiers_table, table1_frame, table1_markdown,
                                write_csv, write_fits_json, write_frame, write_table1)

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

# %% [markdown]
# Cluster bootstrap over source documents. The clusters come from the text set's `source` field, else from a
# document encoded in the text ids (`wiki-<article>-NNN`), else one text per cluster; with one text per
# cluster the cluster bootstrap *is* the text bootstrap, so its resamples are reused.

# %%
clusters, cluster_rule = text_clusters(lm.text_ids, text_field(load_profile(profile).dataset, lm.text_ids, "source"))
n_clusters = len(set(clusters))
print(f"{n_clusters} clusters for {lm.shape[1]} texts (rule: {cluster_rule}); {CLUSTER_RULE}")
if cluster_rule == "text":
    cluster_boot = boot
else:
    cluster_boot = bootstrap_group_fits(lm.to_array(), lm.params, lm.families, n_bootstrap=n_bootstrap, seed=seed,
                                        params_unit=params_unit, progress=True, clusters=clusters)
write_frame(cluster_boot, paths.output("cluster_bootstrap"))

# %% [markdown]
# Model jackknife (each model left out, frontiers and fits recomputed) and profile-likelihood intervals; the
# four kinds of interval go to `uncertainty.csv`. A model is flagged *influential* when leaving it out moves
# α or L∞ outside the full fit's profile interval, or makes the refit fail or hit a bound.

# %%
jackknife = leave_one_model_out(lm.to_array(), lm.params, lm.families, params_unit)
jackknife.insert(1, "model", [lm.model_names[i] for i in jackknife["left_out"]])
write_csv(jackknife, paths.output("jackknife"))
fitted = {group: fit for group, fit in fits.items() if fit.fitted}
fronts = {group: groups[group][groups[group]["on_frontier"]] for group in fitted}
profiles = {group: profile_intervals(fit, fronts[group]["params"].to_numpy(dtype=float) / params_unit,
                                     fronts[group]["loss"].to_numpy(dtype=float), level)
            for group, fit in fitted.items()}
uncertainty = uncertainty_table(fits, level=level, text_boot=boot, cluster_boot=cluster_boot, jackknife=jackknife,
                                profiles=profiles)
sensitivity = sensitivity_table(jackknife, fits, profiles, lm.model_names)
for frame, key in ((uncertainty, "uncertainty"), (sensitivity, "sensitivity")):
    write_csv(frame, paths.output(key))
display(uncertainty.pivot_table(index=["group", "parameter"], columns="method", values=["lo", "hi"]))
display(sensitivity[sensitivity["influential"]])

# %% [markdown]
# Which law do the Pareto points support: eq. 7, eq. 7 without a floor (L∞ = 0), or L = a − b·ln P?
# AICc (Gaussian errors, the variance counted as a parameter) and leave-one-point-out error.

# %%
comparison = pd.concat([compare_forms(front["params"].to_numpy(dtype=float) / params_unit,
                                      front["loss"].to_numpy(dtype=float), group) for group, front in fronts.items()],
                       ignore_index=True)
write_csv(comparison, paths.output("model_comparison"))
for group in fronts:
    print(f"{group}: {support_sentence(comparison[comparison['group'] == group])}")
comparison

# %% [markdown]
# The equal-budget gain: at each budget P the best pair against the best single model with at most P parameters
# (and cross- against same-family pairs), with intervals over resamples of source documents.

# %%
budget = equal_budget_table(lm.to_array(), lm.params, lm.families, n_bootstrap=n_bootstrap, seed=seed, level=level,
                            clusters=None if cluster_rule == "text" else clusters)
write_csv(budget, paths.output("equal_budget"))
budget.groupby("comparison").agg(budgets=("gain", "size"), better=("gain_lo", lambda v: int((v > 0).sum())),
                                 worse=("gain_hi", lambda v: int((v < 0).sum())), max_gain=("gain", "max"))

# %% [markdown]
# One verdict per claim of the paper (rules in `mmlaw_utils/analysis/claims.py`), and Table 1 with the widest
# of the four intervals of each parameter.

# %%
claims = claims_table(fits, uncertainty, comparison, budget, sensitivity)
write_csv(claims, paths.output("claims"))
print(verdict_counts(claims))
display(claims)
table1 = table1_frame(groups, fits, boot, level=level, uncertainty=uncertainty)
caption = (f"**Table 1** ({paths.profile}: {lm.shape[0]} models, {lm.shape[1]} texts in {n_clusters} source "
           f"clusters). Fits of eq. 7 on the Pareto points, P in units of {params_unit:g} parameters; "
           f"[the widest of four {level:.0%} intervals: text bootstrap ({n_bootstrap} text resamples), cluster "
           f"bootstrap ({n_bootstrap} resamples of the {n_clusters} clusters), model jackknife, profile likelihood; "
           f"the column *interval method* names it]; "
           f"(the paper's value).")
write_table1(table1, paths.data_dir, caption=caption)
display(Markdown(table1_markdown(table1, caption)))
