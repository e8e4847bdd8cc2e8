"""benchmarks/gpu_travel.py: what stays for the GPU check, and a slim / restore round trip that leaves git as it was."""

from __future__ import annotations

import subprocess

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def travel():
    return load_benchmark("gpu_travel")


def test_files_to_drop_keeps_code_the_main_arm_caches_and_texts(travel):
    tracked = ["mmlaw_utils/kernel.py", "configs/pools/minipool.yaml", "data/texts/mixed_heldout.jsonl",
               "data/texts/mixed_real.jsonl", "data/minipool/scores/a.parquet", "data/minipool/tokenizers/gpt2/t.json",
               "data/minipool/segments/x.parquet", "data/real/scores/q.parquet", "figures/minipool/f.png",
               "models/minipool/gpt2-d4l2/model.safetensors", "models/minipool/gpt2-d4l20/model.safetensors",
               "models/minipool/gpt2-same-d4l2/model.safetensors", "notebooks/01.ipynb"]
    dropped = travel.files_to_drop(tracked, ["models/minipool/gpt2-d4l2/"])
    assert dropped == ["data/minipool/segments/x.parquet", "data/real/scores/q.parquet", "data/texts/mixed_real.jsonl",
                       "figures/minipool/f.png", "models/minipool/gpt2-d4l20/model.safetensors",
                       "models/minipool/gpt2-same-d4l2/model.safetensors"]


def test_main_arm_folders_are_the_main_models_only(travel):
    pool = {"models": [{"id": "models/minipool/a-d4l2", "arm": "main"}, {"id": "models/minipool/a-same-d4l2",
                                                                          "arm": "same_data"}]}
    assert travel.main_arm_folders(pool) == ["models/minipool/a-d4l2/"]


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def test_slim_then_restore_round_trip(travel, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "data" / "big").mkdir(parents=True)
    (repo / "code.py").write_text("x = 1\n")
    (repo / "data" / "big" / "a.bin").write_bytes(b"a" * 1000)
    (repo / "data" / "keep.txt").write_text("keep\n")
    _git(repo.parent, "init", "-q", str(repo))
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("# user's own line\n*.tmp\n")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(travel, "REPO", repo)

    travel.slim(["data/big/a.bin"])
    # untracked and ignored: it would not travel, and the file is still on disk
    assert travel.tracked_files() == ["code.py", "data/keep.txt"]
    assert _git(repo, "status", "--porcelain", "--untracked-files=all") == "D  data/big/a.bin\n"
    assert (repo / "data" / "big" / "a.bin").read_bytes() == b"a" * 1000
    with pytest.raises(SystemExit, match="already slimmed"):
        travel.slim(["data/big/a.bin"])

    travel.restore()
    assert travel.tracked_files() == ["code.py", "data/big/a.bin", "data/keep.txt"]
    assert _git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert (repo / ".git" / "info" / "exclude").read_text() == "# user's own line\n*.tmp\n"
    with pytest.raises(SystemExit, match="nothing to restore"):
        travel.restore()
