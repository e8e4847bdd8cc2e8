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
# ensembles across families. Points on the Pareto frontier are drawn solid, all other raw configurations
# faint; solid curves are the fits of eq. (7) from notebook 05, shaded bands their pointwise bootstrap
# intervals over texts. P is on a log axis.

# %% tags=["parameters"]
profile = "minipool"
data_dir = None
figures_dir = None  # override the profile's figure folder
ensemble_group = "cross_family"  # the ensemble group of Figure 1: "cross_family" or "same_family"
level = 0.95  # confidence level of the bands

# %%
import pandas as pd
from IPython.display import Image, Markdown, display

from mmlaw_utils.config import FIGURE_STEMS, require, resolve_run_paths
from mmlaw_utils.report.figures import figure1, figure2, save_figure
from mmlaw_utils.report.tables import fits_from_json, groups_from_frontiers_table, read_fits_json

paths = resolve_run_paths(profile, data_dir=data_dir, figures_dir=figures_dir)
groups = groups_from_frontiers_table(pd.read_parquet(require(paths.output("frontiers"), "04_frontiers")))
fitted = read_fits_json(require(paths.output("fits"), "05_fit_scaling_laws"))
fits = fits_from_json(fitted)
boot = pd.read_parquet(require(paths.output("bootstrap"), "05_fit_scaling_laws"))
params_unit = float(fitted["params_unit"])


def absent_groups(*keys: str) -> list[str]:
    """Groups without any point in this pool (e.g. no same-family pairs when every family has one model)."""
    return [key for key in keys if key not in groups or groups[key].empty]


# %%
written = []
if absent_groups("single", ensemble_group):
    display(Markdown(f"**Figure 1 not drawn: not enough points** (no {' or '.join(absent_groups('single', ensemble_group))} "
                     "configurations in this pool)."))
else:
    written += save_figure(figure1(groups, fits, boot, ensemble_group=ensemble_group, params_unit=params_unit, level=level),
                           paths.figures_dir, FIGURE_STEMS["fig1"])
    display(Image(filename=str(written[0])))

# %%
if absent_groups("same_family", "cross_family"):
    display(Markdown(f"**Figure 2 not drawn: not enough points** (no {' or '.join(absent_groups('same_family', 'cross_family'))} "
                     "pairs in this pool: it needs a family with two models and two families)."))
else:
    fig2_paths = save_figure(figure2(groups, fits, boot, params_unit=params_unit, level=level),
                             paths.figures_dir, FIGURE_STEMS["fig2"])
    written += fig2_paths
    display(Image(filename=str(fig2_paths[0])))
print("written:", *[str(p) for p in written], sep="\n  ")
