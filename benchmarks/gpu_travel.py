"""Fit the working tree to a lent device: only what ``gpu_check.py`` reads travels (the device takes at most 64 MiB).

    .venv/bin/python benchmarks/gpu_travel.py             # plan: bytes that travel now and after --slim
    .venv/bin/python benchmarks/gpu_travel.py --slim      # untrack the rest (index only; files stay on disk)
    .venv/bin/python benchmarks/gpu_travel.py --restore   # track them again, exactly as before
    .venv/bin/python benchmarks/gpu_travel.py --smoke     # CI: the plan, nothing changed

The device copies the tracked files and the untracked files git does not ignore. The committed tree holds every
pool model's weights, the segment losses and the real pool's caches (over 100 MB), so ``--slim`` removes from
git's index every file under data/, models/ and figures/ that the GPU check does not read, and lists them in
``.git/info/exclude`` so that they do not travel as untracked files either. What it did is recorded in
``.git/gpu_travel.json``; ``--restore`` undoes exactly that. Never commit between the two: the commit would
delete those files from the repository.

Kept: the main arm's weights (``models/minipool/<family>-d<d>l<layers>``), the committed score caches and
tokenizers of the miniature pool, and the held-out texts; everything outside data/, models/ and figures/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEVICE_LIMIT_BYTES = 64 * 2**20
HEAVY_TOPS = ("data/", "models/", "figures/")
KEEP_PREFIXES = ("data/texts/mixed_heldout.jsonl", "data/minipool/scores/", "data/minipool/tokenizers/")
STATE = ".git/gpu_travel.json"
EXCLUDE = ".git/info/exclude"
EXCLUDE_MARK = "# gpu_travel.py --slim"


def main_arm_folders(pool: dict) -> list[str]:
    """Folders (with trailing slash) of the pool's main-arm models, the ones gpu_check scores."""
    return [str(entry["id"]).rstrip("/") + "/" for entry in pool["models"] if entry.get("arm", "main") == "main"]


def files_to_drop(tracked: Iterable[str], keep_folders: Iterable[str]) -> list[str]:
    """Tracked paths under data/, models/ or figures/ that neither KEEP_PREFIXES nor ``keep_folders`` cover."""
    keep = tuple(KEEP_PREFIXES) + tuple(keep_folders)
    return sorted(p for p in tracked if p.startswith(HEAVY_TOPS) and not p.startswith(keep))


def _git(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=REPO, input=stdin, capture_output=True, text=True, check=True).stdout


def tracked_files() -> list[str]:
    """Paths in git's index."""
    return [p for p in _git("ls-files", "-z").split("\0") if p]


def total_bytes(paths: Iterable[str]) -> int:
    """Bytes on disk of ``paths`` (missing files count 0)."""
    return sum((REPO / p).stat().st_size for p in paths if (REPO / p).is_file())


def plan() -> dict:
    """What travels now, what --slim would drop, and what would travel after it (bytes)."""
    from mmlaw_utils.minipool.train import load_pool_config

    tracked = tracked_files()
    drop = files_to_drop(tracked, main_arm_folders(load_pool_config(REPO / "configs" / "pools" / "minipool.yaml")))
    now = total_bytes(tracked)
    dropped = total_bytes(drop)
    return {"tracked_bytes": now, "drop": drop, "drop_bytes": dropped, "after_bytes": now - dropped}


def slim(drop: list[str]) -> None:
    """Untrack ``drop`` (index only) and exclude it, recording both for --restore."""
    if (REPO / STATE).exists():
        raise SystemExit(f"gpu_travel: {STATE} exists: the tree is already slimmed; run --restore first")
    (REPO / STATE).write_text(json.dumps({"untracked": drop}))
    _git("rm", "-q", "--cached", "--pathspec-from-file=-", "--pathspec-file-nul", stdin="\0".join(drop))
    with open(REPO / EXCLUDE, "a", encoding="utf-8") as handle:
        handle.write("".join(f"{EXCLUDE_MARK}\n/{p}\n" for p in drop))


def restore() -> None:
    """Track again what --slim untracked, and drop its exclude lines."""
    state = REPO / STATE
    if not state.exists():
        raise SystemExit(f"gpu_travel: {STATE} is missing: nothing to restore")
    drop = json.loads(state.read_text())["untracked"]
    _git("reset", "-q", "HEAD", "--pathspec-from-file=-", "--pathspec-file-nul", stdin="\0".join(drop))
    lines = (REPO / EXCLUDE).read_text(encoding="utf-8").splitlines(keepends=True)
    kept, skip = [], False
    for line in lines:
        if line.rstrip("\n") == EXCLUDE_MARK:
            skip = True  # the next line is one of ours
            continue
        if not skip:
            kept.append(line)
        skip = False
    (REPO / EXCLUDE).write_text("".join(kept), encoding="utf-8")
    state.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--slim", action="store_true", help="untrack what gpu_check does not read")
    action.add_argument("--restore", action="store_true", help="undo --slim")
    action.add_argument("--smoke", action="store_true", help="print the plan only (what CI runs)")
    args = parser.parse_args(argv)
    if args.restore:
        restore()
        print(f"gpu_travel: restored; {total_bytes(tracked_files()) / 2**20:.1f} MiB tracked")
        return 0
    result = plan()
    print(f"gpu_travel: tracked now {result['tracked_bytes'] / 2**20:.1f} MiB; --slim drops {len(result['drop'])} "
          f"files ({result['drop_bytes'] / 2**20:.1f} MiB), leaving {result['after_bytes'] / 2**20:.1f} MiB "
          f"(device limit {DEVICE_LIMIT_BYTES / 2**20:.0f} MiB, untracked files not ignored come on top)")
    if result["after_bytes"] > DEVICE_LIMIT_BYTES:
        print("gpu_travel: still over the device limit after --slim", file=sys.stderr)
        return 1
    if args.slim:
        slim(result["drop"])
        print(f"gpu_travel: slimmed; run the device call now, then `{Path(__file__).name} --restore` before any commit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
