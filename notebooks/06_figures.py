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
# # 06 · Figures 1 and 2 (§4.1)
#
# **Figure 1** compares single models with model ensembles (by default the cross-family pairs, whose law
# eq. 10 is the paper's headline "model ensemble"); **Figure 2** compares ensembles within one family with
# ensembles across families. Every raw configuration is drawn (faint), the Pareto points solid with the
# model names beside them and one marker per family (for a pair, the family of its larger member). Curves
# are the fits of eq. (7) from notebook 05, dashed where the floor is held at its bound L∞ = 0; the
# shaded band of each law is the envelope of the pointwise bands of the four methods of Table 1: text bootstrap,
# cluster bootstrap, model jackknife and profile likelihood (the curves its profile accepts). P is on a log axis
# in a unit read off the data.
#
# The **equal-budget figure** shows (top), at each budget P, the best pair against the best single model with at
# most P parameters (and cross- against same-family pairs), with pointwise intervals and a simultaneous sup-t band
# over resampled source documents, steps behind only by the cheapest extra model marked; and (bottom) the
# horizontal comparison: at each loss target, the ratio of the parameters the reference needs to those the
# ensemble needs (`equal_budget.csv`, `equal_budget_horizontal.csv` from notebook 05).

# %% tags=["parameters"]
profile = "minipool"
data_dir = None
figures_dir = None  # override the profile's figure folder
ensemble_group = "cross_family"  # the ensemble group of Figure 1: "cross_family" or "same_family"
level = 0.95  # confidence level of the bands

# %%
import pandas as pd
from IPython.display import Image, Markdown, display

from mmlaw_utils.analysis.uncertainty import profile_draws
from mmlaw_utils.pipeline import check_parameter_values
from mmlaw_utils.config import FIGURE_STEMS, require, resolve_run_paths
from mmlaw_utils.report.figures import budget_figure, figure1, figure2, save_figure
from mmlaw_utils.report.tables import fits_from_json, groups_from_frontiers_table, read_fits_json

check_parameter_values({"ensemble_group": ensemble_group, "level": level})  # papermill runs too, not only `run`
paths = resolve_run_paths(profile, data_dir=data_dir, figures_dir=figures_dir)
groups = groups_from_frontiers_table(pd.read_parquet(require(paths.output("frontiers"), "04_frontiers")))
fitted = read_fits_json(require(paths.output("fits"), "05_fit_scaling_laws"))
fits = fits_from_json(fitted)
boot = pd.read_parquet(require(paths.output("bootstrap"), "05_fit_scaling_laws"))
params_unit = float(fitted["params_unit"])
models = pd.read_parquet(require(paths.output("models"), "02_loss_matrix"))
draws = {"text_bootstrap": boot,
         "cluster_bootstrap": pd.read_parquet(require(paths.output("cluster_bootstrap"), "05_fit_scaling_laws")),
         "model_jackknife": pd.read_csv(require(paths.output("jackknife"), "05_fit_scaling_laws")),
         "profile_likelihood": profile_draws(fits, {group: (frame.loc[frame["on_frontier"], "params"].to_numpy(float) / params_unit,
                                                            frame.loc[frame["on_frontier"], "loss"].to_numpy(float))
                                                    for group, frame in groups.items()}, level)}
labels = dict(draws=draws, model_names=models["model"].tolist(), model_families=models["family"].tolist(),
              model_params=models["params"].to_numpy())


def absent_groups(*keys: str) -> list[str]:
    """Groups without any point in this pool (e.g. no same-family pairs when every family has one model)."""
    return [key for key in keys if key not in groups or groups[key].empty]


# %%
written = []
if absent_groups("single", ensemble_group):
    display(Markdown(f"**Figure 1 not drawn: not enough points** (no {' or '.join(absent_groups('single', ensemble_group))} "
                     "configurations in this pool)."))
else:
    fig1_paths = save_figure(figure1(groups, fits, boot, ensemble_group=ensemble_group, params_unit=params_unit,
                                     level=level, **labels), paths.figures_dir, FIGURE_STEMS["fig1"])
    written += fig1_paths
    display(Image(filename=str(fig1_paths[0])))

# %%
if absent_groups("same_family", "cross_family"):
    display(Markdown(f"**Figure 2 not drawn: not enough points** (no {' or '.join(absent_groups('same_family', 'cross_family'))} "
                     "pairs in this pool: it needs a family with two models and two families)."))
else:
    fig2_paths = save_figure(figure2(groups, fits, boot, params_unit=params_unit, level=level, **labels),
                             paths.figures_dir, FIGURE_STEMS["fig2"])
    written += fig2_paths
    display(Image(filename=str(fig2_paths[0])))

# %%
budget = pd.read_csv(require(paths.output("equal_budget"), "05_fit_scaling_laws"))
if budget.empty:
    display(Markdown("**Equal-budget figure not drawn: not enough points** (no comparison of an ensemble group with "
                     "single models in this pool)."))
else:
    horizontal = pd.read_csv(require(paths.output("equal_budget_horizontal"), "05_fit_scaling_laws"))
    budget_paths = save_figure(budget_figure(budget, horizontal), paths.figures_dir, FIGURE_STEMS["budget"])
    written += budget_paths
    display(Image(filename=str(budget_paths[0])))
print("written:", *[str(p) for p in written], sep="\n  ")
