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
# # 07 · Beyond pairs: any-size ensembles, realizable mixtures, diversity, forecasting (§2.5, §6.1–6.3)
#
# The paper's frontier (§2.5, eqs. 4–5) ranges over *all* subsets of the pool but the experiments stop at
# pairs (§6.3). Here: **(1)** the exact all-sizes oracle frontier (budget-walk mixed-integer program, each
# point with an optimality certificate), frontiers of exactly k models and fits of eq. (7) per k, and how far
# greedy/beam heuristics fall short; **(2)** the sequence-level Bayesian mixture −log Σ w_i e^{−L_i(x)}, a
# realizable system within log(1/w_min) nats/text of the oracle (§6.1–6.2), and the share of the oracle's gain
# it keeps; **(3)** diversity: gain of a pair over its better member by family and size ratio (§4.4–4.5);
# **(4)** whether eq. (7) fitted below a budget forecasts the frontier above it (§1).

# %% tags=["parameters"]
profile = "minipool"
data_dir = None  # override the profile's data folder
figures_dir = None  # override the profile's figure folder
max_size = 4  # frontiers of exactly k models, k from 1 to max_size (exhaustive up to 3, exact search above)
exact_time_limit = 600.0  # seconds per exact search; a search stopped by it keeps a certified partial frontier
beam_width = 32  # beam-search width (heuristic frontier)
fit_fraction = 0.6  # forecast: fit below this fraction of each frontier's log-params range
n_bootstrap = 200  # forecast: bootstrap resamples over texts
seed = 0  # text split (mixture weights) and bootstrap seed
params_unit = 1e9  # fits use P in billions

# %%
import numpy as np
from IPython.display import Image, Markdown, display

from mmlaw_utils.analysis import diversity, forecast, mixture, subsets
from mmlaw_utils.scoring.assemble import load_loss_matrix
from mmlaw_utils.analysis.oracle import pair_win_shares
from mmlaw_utils.pipeline import check_parameter_values
from mmlaw_utils.config import FIGURE_STEMS, resolve_run_paths
from mmlaw_utils.report import figures
from mmlaw_utils.report.beyond_pairs import beyond_pairs_markdown, without_times
from mmlaw_utils.report.tables import write_csv, write_frame
from mmlaw_utils.io import atomic_write_text

# checked here too, for papermill runs that do not go through `run`
check_parameter_values({"max_size": max_size, "exact_time_limit": exact_time_limit, "beam_width": beam_width,
                        "fit_fraction": fit_fraction, "n_bootstrap": n_bootstrap, "seed": seed,
                        "params_unit": params_unit})
paths = resolve_run_paths(profile, data_dir=data_dir, figures_dir=figures_dir)
lm = load_loss_matrix(paths.data_dir)
L, params, families, names = lm.to_array(), lm.params, lm.families, lm.model_names
print(f"{profile}: {L.shape[0]} models x {L.shape[1]} texts")

# %% [markdown]
# ## 1 · Ensembles of any size (§2.5; beyond §3.3's pairs)

# %%
exact = subsets.subset_frontier(L, params, total_time_limit=exact_time_limit, progress=True)
fronts = subsets.frontiers_by_size(L, params, max_k=max_size, all_sizes=exact, total_time_limit=exact_time_limit)
size_fits = subsets.fit_frontiers(fronts, params_unit=params_unit)
heuristics = {"greedy": subsets.frontier_of(subsets.greedy_points(L, params)),
              "beam": subsets.frontier_of(subsets.beam_points(L, params, beam_width=beam_width))}
shortfall = {name: subsets.heuristic_shortfall(exact, front) for name, front in heuristics.items()}
write_frame(without_times(subsets.named_frontier(exact, names)), paths.output("subset_frontier"))
write_csv(size_fits, paths.output("subset_fits"))
display(size_fits)

# %%
fig3 = figures.save_figure(figures.plot_subset_frontiers(fronts, size_fits, heuristics, params_unit=params_unit),
                           paths.figures_dir, FIGURE_STEMS["fig3"])
display(Image(filename=str(fig3[0])))

# %% [markdown]
# ## 2 · Realizable mixture vs oracle (§6.1–6.2)

# %%
pair_table = mixture.pair_mixture_table(L, params, families, seed=seed)
kept = mixture.gain_kept(pair_table)
any_size_mix = mixture.subset_mixture_losses(L, exact["subset"], params, seed=seed)
write_csv(kept, paths.output("mixture_gain"))
display(kept)
fig4 = figures.save_figure(figures.plot_mixture_vs_oracle(pair_table, any_size_mix, params_unit=params_unit),
                           paths.figures_dir, FIGURE_STEMS["fig4"])
display(Image(filename=str(fig4[0])))

# %% [markdown]
# ## 3 · Diversity behind the gains (§4.4–4.5)

# %%
div = diversity.pair_diversity_table(L, params, families)
relation = diversity.gain_by_relation(div)
write_csv(relation, paths.output("diversity_by_relation"))
display(relation, diversity.gain_regression(div))
fig5 = figures.save_figure(figures.plot_diversity(div, pair_win_shares(L), np.lexsort((params, families)), names),
                           paths.figures_dir, FIGURE_STEMS["fig5"])
display(Image(filename=str(fig5[0])))

# %% [markdown]
# ## 4 · Does the law forecast? (§1)

# %%
candidates = list(exact["subset"]) + list(subsets.beam_points(L, params, beam_width=beam_width)["subset"])
fc = forecast.forecast_table(L, params, families, candidates, fit_fraction=fit_fraction, n_bootstrap=n_bootstrap,
                             seed=seed, params_unit=params_unit)
write_csv(fc, paths.output("forecast"))
display(fc)
fig6 = figures.save_figure(figures.plot_forecast(L, params, families, fc, exact, params_unit=params_unit,
                                                 n_bootstrap=n_bootstrap, seed=seed),
                           paths.figures_dir, FIGURE_STEMS["fig6"])
display(Image(filename=str(fig6[0])))

# %%
summary = beyond_pairs_markdown(profile, exact=exact, size_fits=size_fits, shortfall=shortfall, gain_kept=kept,
                                relation=relation, forecast=fc,
                                n_models=L.shape[0], n_texts=L.shape[1])
atomic_write_text(paths.output("beyond_pairs"), summary)
display(Markdown(summary))
