"""Wall time of the granularity analysis (notebook 10's computation) on the real pool and the miniature main arm.

Target (issue 21): the granularity analysis of the real pool (4 models x 600 texts) and the miniature pool's
main arm (30 models x 2,398 texts) within 2 minutes in all. The segment files are made here, in a temporary
folder, by splitting each committed text loss over the text's segments at random (the analysis's cost depends on
the shapes, not on the values): real pool at text, line, word and common-token granularity; main arm at word and
common-token granularity. Common-token segments are approximated by cutting every word longer than 4 bytes in
two (about 1.6 segments per word); the real ones come from the tokenizers.

    nice -n 10 .venv/bin/python benchmarks/bench_granularity.py [--write-readme]
    nice -n 10 .venv/bin/python benchmarks/bench_granularity.py --real-segments [--write-readme]

``--real-segments`` times the profiles' own segment files instead (every segmentation found under
``data/<profile>/segments/``; the miniature pool's word and common-token files are not committed and count only
once ``python -m mmlaw_utils segments --profile minipool --present-only`` has rebuilt them).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mmlaw_utils.config import load_profile, resolve_run_paths  # noqa: E402
from mmlaw_utils.io import write_marked_region  # noqa: E402
from mmlaw_utils.report import granularity as report  # noqa: E402
from mmlaw_utils.scoring.assemble import load_loss_matrix  # noqa: E402
from mmlaw_utils.texts import load_texts  # noqa: E402

START, END = "<!-- granularity:start -->", "<!-- granularity:end -->"


def spans(text: str, segmentation: str) -> np.ndarray:
    """Byte spans (start, end) tiling ``text`` for a segmentation (common_token approximated, see module doc)."""
    raw = text.encode("utf-8")
    pattern = {"text": rb".+$", "line": rb"[^\n]*\n|[^\n]+$", "word": rb"\s*\S+", "common_token": rb"\s*\S+"}[segmentation]
    cuts = [m.end() for m in re.finditer(pattern, raw, re.DOTALL if segmentation == "text" else 0)]
    if segmentation == "common_token":
        starts = [0, *cuts[:-1]]
        cuts = sorted({*cuts, *((a + b) // 2 for a, b in zip(starts, cuts) if b - a > 4)})
    ends = np.asarray([c for c in cuts if 0 < c < len(raw)] + [len(raw)], dtype=np.int64)
    return np.stack([np.r_[0, ends[:-1]], ends], axis=1)


def write_segments(folder: Path, lm, texts: pd.DataFrame, segmentation: str, seed: int = 0) -> int:
    """One file per model under ``folder/segments/<segmentation>/``: each text loss split at random over its segments."""
    by_id = dict(zip(texts["text_id"], texts["text"]))
    per_text = [spans(by_id[t], segmentation) for t in lm.text_ids]
    lengths = np.array([len(s) for s in per_text])
    all_spans = np.concatenate(per_text)
    text_index = np.repeat(np.arange(len(per_text)), lengths)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    text_ids = np.asarray(lm.text_ids, dtype=object)[text_index]
    segment = np.arange(lengths.sum()) - starts[text_index]
    rng = np.random.default_rng(seed)
    out = folder / "segments" / segmentation
    out.mkdir(parents=True, exist_ok=True)
    L = lm.to_array()
    for k, model in enumerate(lm.model_names):
        share = rng.gamma(2.0, size=lengths.sum())
        share /= np.add.reduceat(share, starts)[text_index]
        pd.DataFrame({"model": model, "text_id": text_ids, "segment": segment.astype(np.int32),
                      "byte_start": all_spans[:, 0].astype(np.int32), "byte_end": all_spans[:, 1].astype(np.int32),
                      "nll": L[k, text_index] * share}).to_parquet(out / f"model{k:03d}.parquet")
    return int(lengths.sum())


def run(profile: str, segmentations: list[str], root: Path, n_bootstrap: int = 200) -> dict:
    """Prepare the profile's fake segment files in ``root``, then time compute_results + write_outputs."""
    spec = load_profile(profile)
    lm = load_loss_matrix(spec.data_dir)
    texts = load_texts(spec.dataset, spec.n_texts)
    folder = root / profile
    for name in ("loss_matrix.parquet", "models.parquet"):
        (folder).mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes((spec.data_dir / name).read_bytes())
    sizes = {g: write_segments(folder, lm, texts, g) for g in segmentations}
    start, cpu_start = time.perf_counter(), time.process_time()
    results = report.compute_results(lm, texts, folder, profile, n_bootstrap=n_bootstrap, progress=False)
    report.write_outputs(results, resolve_run_paths(profile, data_dir=folder))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"profile": profile, "models": lm.shape[0], "texts": lm.shape[1], "seconds": seconds, "cpu": cpu,
            "segments": ", ".join(f"{g} {n:,}" for g, n in sizes.items())}


def run_real(profile: str, root: Path, n_bootstrap: int = 200) -> dict:
    """Time compute_results + write_outputs on the profile's own segment files (linked into ``root``)."""
    from mmlaw_utils.scoring.segment_files import available_segmentations

    spec = load_profile(profile)
    lm = load_loss_matrix(spec.data_dir)
    texts = load_texts(spec.dataset, spec.n_texts)
    folder = root / profile
    (folder / "segments").mkdir(parents=True, exist_ok=True)
    for name in ("loss_matrix.parquet", "models.parquet"):
        (folder / name).write_bytes((spec.data_dir / name).read_bytes())
    found = available_segmentations(spec.data_dir)
    for g in found:
        (folder / "segments" / g).symlink_to((spec.data_dir / "segments" / g).resolve(), target_is_directory=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    results = report.compute_results(lm, texts, folder, profile, n_bootstrap=n_bootstrap, progress=False)
    report.write_outputs(results, resolve_run_paths(profile, data_dir=folder))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    sizes = dict(zip(results.summary["granularity"], results.summary["n_segments"]))
    return {"profile": profile, "models": len(results.model_names), "texts": results.n_texts, "seconds": seconds,
            "cpu": cpu, "segments": ", ".join(f"{g} {int(n):,}" for g, n in sizes.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-readme", action="store_true", help="rewrite the granularity section of benchmarks/README.md")
    parser.add_argument("--real-segments", action="store_true",
                        help="time the profiles' own segment files (data/<profile>/segments/) instead of random splits")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds-long check: the real pool at text and word granularity, 20 resamples; writes nothing")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    if args.smoke:
        with tempfile.TemporaryDirectory() as tmp:
            runner = (lambda: run_real("real", Path(tmp), n_bootstrap=20)) if args.real_segments else (
                lambda: run("real", ["text", "word"], Path(tmp), n_bootstrap=20))
            row = runner()
        print(f"smoke: {row['models']} x {row['texts']} ({row['segments']}) in {row['seconds']:.1f} s")
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.real_segments:
            rows = [run_real("real", Path(tmp)), run_real("minipool", Path(tmp))]
        else:
            rows = [run("real", ["text", "line", "word", "common_token"], Path(tmp)),
                    run("minipool", ["word", "common_token"], Path(tmp))]
    total = sum(r["seconds"] for r in rows)
    flag = " --real-segments" if args.real_segments else ""
    source = ("the profiles' own segment files, every segmentation on disk" if args.real_segments
              else "segment files made by splitting the committed text losses at random")
    lines = ["## Granularity analysis (notebook 10)", "",
             f"Command: `nice -n 10 .venv/bin/python benchmarks/bench_granularity.py{flag} --write-readme` ({source}; "
             f"{platform.machine()}, {os.cpu_count()} cores visible, "
             f"load average {load:.1f} at start, python {platform.python_version()}). Time of "
             "`report.granularity.compute_results` (200 resamples) and `write_outputs`, segment files read included. "
             "Target: both pools within 120 s. CPU time (all threads of the process) shows what the shared machine's "
             "load hides.", "",
             "| profile | models x texts | segments per granularity | wall time (s) | CPU time (s) |",
             "|---|---|---|---:|---:|"]
    lines += [f"| {r['profile']} | {r['models']} x {r['texts']} | {r['segments']} | {r['seconds']:.1f} | {r['cpu']:.1f} |"
              for r in rows]
    lines += ["", f"Total: **{total:.1f} s** wall, {sum(r['cpu'] for r in rows):.1f} s CPU (target 120 s wall)."]
    text = "\n".join(lines)
    print(text)
    if args.write_readme:
        write_marked_region(REPO / "benchmarks" / "README.md", text, START, END, append_if_missing=True)


if __name__ == "__main__":
    main()
