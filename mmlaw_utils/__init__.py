"""mmlaw: reproducible artifact for *The Law of Multi-Model Collaboration*.

The pipeline runs scoring -> analysis -> report; the miniature pool is built apart. Modules:

* ``cli``, ``__main__``: the one command line, ``python -m mmlaw_utils <command>``.
* ``pipeline``: stages as data (notebook, inputs, outputs), --from/--to, the run lock, lineage, papermill, timings.
* ``config``: profiles (configs/profiles/*.yaml), run folders, the registry of output files.
* ``io``: atomic writes, file locks, sha256 of files, marked-region replacement in README and benchmark pages.
* ``lineage``: which inputs and parameters each stage output was computed from (``<data_dir>/lineage.json``).
* ``pool``: the pool loader (configs/pools/*.yaml) and pool summaries.
* ``texts``: held-out text sets and their fingerprint.
* ``textsubset``: deterministic stratified subsets of a domain-labelled text set (profile real).
* ``labhook``: the Jupyter pre-save hook that keeps outputs out of the tracked notebooks/*.ipynb.
* ``envcheck``: whether .venv already holds every pin of pyproject.toml (used by run_all.sh).
* ``scoring.kernel``: eq. 1, summed next-token NLL (nats) per text: rolling windows, packing, the tiled head.
* ``scoring.models``: model loading, dtype/device, prefix token, context length, parameter counts.
* ``scoring.run``: score one model into its cache, resumably; which caches are stale.
* ``scoring.batched``: small models fast: token ids cached per tokenizer, every window in one pass, many models.
* ``scoring.cache``: per-model score caches (parquet + provenance), resumable chunks, locks.
* ``scoring.segments``: byte-aligned token ends and segmentations (text, line, sentence, word, common token); segment losses.
* ``scoring.segment_files``: the token- and segment-loss file format (data/<profile>/segments): paths, columns, readers, checks; torch-free.
* ``scoring.segment_cache``: scoring token losses and writing segment files per model, the segments command.
* ``scoring.assemble``: score caches -> the loss-matrix files; their reader and writer.
* ``scoring.expect``: what a profile's caches must say (text set, settings, model) to be assembled.
* ``scoring.launch``: one submitit job per model of a pool (SLURM or local).
* ``scoring.realmodels``: the real pretrained models packaged on PyPI as GGUF, byte slices joined (profile real).
* ``scoring.synthetic``: seeded synthetic pools in the score-cache format.
* ``analysis.lossmatrix``: the validated models x texts loss matrix (data model only, reads no file).
* ``analysis.oracle``: oracle ensemble losses (eqs. 3-4).
* ``analysis.groups``: the collaboration groups (single, same-family, cross-family) and their labels.
* ``analysis.frontier``: Pareto frontiers (eq. 5) of the three collaboration groups.
* ``analysis.fit``: fits of L(P) = A * P^-alpha + L_inf (eq. 7).
* ``analysis.bootstrap``: bootstrap over texts (or whole source documents) of the frontiers and fits.
* ``analysis.profile``: profile-likelihood intervals of A, alpha and L_inf.
* ``analysis.uncertainty``: the four kinds of interval, the model jackknife, leave-one-model-out sensitivity.
* ``analysis.model_selection``: eq. 7 with and without a floor vs a log-linear law (AICc, leave-one-out error).
* ``analysis.padding``: padded Pareto points, effective members and the padding null of the pair frontiers.
* ``analysis.floor``: likelihood-ratio test of the paper's relative floor and the curvature test in ln P.
* ``analysis.budget``: the equal-budget comparison as curves (vertical gain, horizontal parameter ratio, sup-t bands).
* ``analysis.claims``: one verdict per claim of the paper (agrees, disagrees, explained by padding, rejected at the
  paper's relative size, not identified, inconclusive).
* ``analysis.subsets``: exact frontiers over subsets of any size.
* ``analysis.subset_search``: branch and bound behind the exact any-size frontier (bounds, certificates).
* ``analysis.mixture``: the realizable Bayesian mixture vs the oracle.
* ``analysis.diversity``: pair win shares and gains by family relation.
* ``analysis.forecast``: fit below a budget, predict the frontier above it.
* ``analysis.realpool``: a small real pool: every subset's oracle, per-domain wins, family pairs, mixtures.
* ``analysis.selection``: the numbers of one chosen subset (the explorer's): P, oracle, gain, mixtures, win shares.
* ``analysis.arms``: the miniature pool's arms: oracle, per-domain router and within-domain gains at equal size,
  with intervals over documents and seed replicas; domain wins and their seed spread.
* ``analysis.granularity``: the oracle at text, line, sentence, word and common-token granularity (segment losses).
* ``analysis.switching``: the fixed-share switching mixture over models, the realizable counterpart of a segment oracle.
* ``report.tables``: Table 1, the README results region and the other tables.
* ``report.figures``: every figure.
* ``report.units``: axis units read off the data (thousands, millions, billions) and short model names.
* ``report.beyond_pairs``: the beyond-pairs tables and notes of notebook 07.
* ``report.realpool``: the real-pool report of notebook 08 (markdown, csv, figures, README region).
* ``report.arms``: the miniature pool's diversity experiment (csv, markdown, figure).
* ``report.explorer``: the interactive explorer of notebooks/explore.ipynb (ipywidgets, plotly).
* ``report.granularity``: notebook 10: granularity tables, figures and README regions from the segment files.
* ``minipool.textset``: builds the held-out Wikipedia text set bit for bit.
* ``minipool.sources``: text sources from pinned pip/npm/apt archives; held-out/training split by document.
* ``minipool.mixedset``: builds the mixed-domain held-out text set (8 domains) bit for bit.
* ``minipool.rdata``: reads R lazy-load databases (the Austen novels' package format).
* ``minipool.corpora``: training mixtures of the miniature pool.
* ``minipool.recipe``: one training recipe for every size: sizes, token budgets, learning rates, the model list.
* ``minipool.train``: trains the miniature pool's tokenizers and models.
"""

__version__ = "0.1.0"
