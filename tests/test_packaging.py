"""Packaging: one source of dependency pins, and the entry-point scripts that install from it."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_pyproject_pins_every_dependency_exactly_and_torch_2_13_0():
    project = _pyproject()["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    loose = [r for r in requirements if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.+\-]+", r)]
    assert not loose, f"dependencies without an exact == pin: {loose}"
    assert "torch==2.13.0" in project["optional-dependencies"]["score"]
    base = {re.split(r"[=\[]", r)[0] for r in project["dependencies"]}
    assert not base & {"torch", "transformers", "tokenizers", "accelerate", "datasets", "gensim"}, "the base install is light"
    assert "test" in project["optional-dependencies"]


def test_environment_yml_installs_the_project_instead_of_repeating_pins():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert sorted(conda) == ["pip", "python=3.11"], "conda packages other than python and pip would be a second pin list"
    assert len(pip) == 1 and len(pip[0]["pip"]) == 1
    (spec,) = pip[0]["pip"]
    assert re.fullmatch(r"-e \.(\[[a-z,]+\])?", spec), spec
    # no package of pyproject.toml is named (and so pinned) a second time anywhere in the file
    names = {re.split(r"[=<>\[]", r)[0].lower() for r in _pyproject()["project"]["dependencies"]}
    text = (REPO_ROOT / "environment.yml").read_text().lower()
    body = "\n".join(line.split("#")[0] for line in text.splitlines())
    assert not [n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", body)]


def _code_lines(script: str) -> list[str]:
    """Lines of a shell script that are neither blank nor comments."""
    return [line for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_run_all_is_a_short_bootstrap_that_hands_over_to_the_cli():
    script = (REPO_ROOT / "run_all.sh").read_text()
    assert len(_code_lines(script)) <= 80
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script
    subprocess.run(["bash", "-n", str(REPO_ROOT / "run_all.sh")], check=True)
    assert 'exec "$VPY" -m mmlaw_utils run' in script


def _fake_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of run_all.sh next to a fake .venv whose python logs its arguments (no real install)."""
    root = tmp_path / "repo"
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "share" / "jupyter" / "kernels" / "mmlaw").mkdir(parents=True)
    (root / ".venv" / "share" / "jupyter" / "kernels" / "mmlaw" / "kernel.json").write_text("{}")
    (root / "run_all.sh").write_text((REPO_ROOT / "run_all.sh").read_text())
    (root / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = []\n')
    log = tmp_path / "calls.log"
    python = root / ".venv" / "bin" / "python"
    # answers the version check, the stamp hash and the pin check (not satisfied); logs every other call
    python.write_text(f"""#!/usr/bin/env bash
case "$*" in
  *version_info*) exit 0 ;;
  *hashlib*) echo fakehash; exit 0 ;;
  *pins_satisfied*) exit 1 ;;
esac
printf '%s\\n' "$*" >> {log}
""")
    python.chmod(0o755)
    (root / ".venv" / ".mmlaw-setup-stamp").write_text("fakehash\n")
    return root, log


def test_run_all_installs_torch_first_then_the_project(tmp_path):
    root, log = _fake_venv(tmp_path)
    (root / ".venv" / ".mmlaw-setup-stamp").write_text("stale\n")
    subprocess.run(["bash", str(root / "run_all.sh"), "--setup-only"], check=True, capture_output=True,
                   env={**os.environ, "MMLAW_TORCH_INDEX_URL": "https://example.invalid/cpu"})
    calls = [line for line in log.read_text().splitlines() if "pip install" in line]
    assert calls == ["-m pip install torch==2.13.0 --index-url https://example.invalid/cpu", '-m pip install -e .[score,build,test]']
    assert (root / ".venv" / ".mmlaw-setup-stamp").read_text() == "fakehash\n"


@pytest.mark.parametrize("argv, expected", [
    ([], "-m mmlaw_utils run"),
    (["--profile", "synthetic", "--to", "06", "--no-readme", "-p", "data_dir", "/tmp/a b", "-p", "n_bootstrap", "200"],
     "-m mmlaw_utils run --profile synthetic --to 06 --no-readme -p data_dir /tmp/a b -p n_bootstrap 200"),
    (["--rescore", "--rebuild", "--from", "04", "--update-readme"], "-m mmlaw_utils run --rescore --rebuild --from 04 --update-readme"),
    (["-p", "figures_dir", "--test"], "-m mmlaw_utils run -p figures_dir --test"),  # a -p value is never an option
    (["--test", "-x", "-q", "tests/test_fit.py"], "-m pytest -x -q tests/test_fit.py"),
    (["--setup-only"], None),
])
def test_run_all_hands_every_option_to_the_cli_unchanged(tmp_path, argv, expected):
    root, log = _fake_venv(tmp_path)
    subprocess.run(["bash", str(root / "run_all.sh"), *argv], check=True, capture_output=True)
    calls = log.read_text().splitlines() if log.exists() else []
    assert calls == ([expected] if expected else [])


def test_run_all_help_documents_the_bootstrap_and_every_option_of_run():
    result = subprocess.run(["bash", str(REPO_ROOT / "run_all.sh"), "--help"], capture_output=True, text=True, check=True)
    for option in ("--profile", "-p KEY VALUE", "--rescore", "--rebuild", "--setup-only", "--test", "--from", "--to",
                   "--update-readme", "--no-readme", "runs/<profile>/", "non-zero exit"):
        assert option in result.stdout, option


def test_ci_runs_the_readme_test_command():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "./run_all.sh --test" in ci and "set -euo pipefail" in ci
    readme = (REPO_ROOT / "README.md").read_text()
    assert "./run_all.sh --test" in readme and "./run_all.sh\n" in readme


def test_license_and_citation_match_pyproject():
    project = _pyproject()["project"]
    assert project["license"] == {"text": "MIT"}
    assert (REPO_ROOT / "LICENSE").read_text().startswith("MIT License\n")
    citation = yaml.safe_load((REPO_ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    assert citation["version"] == project["version"]
    assert {"type", "title", "authors", "message"} <= set(citation)
    paper = citation["preferred-citation"]
    assert paper["title"].startswith("The Law of Multi-Model Collaboration") and len(paper["authors"]) == 6


def test_readme_first_screen_says_what_this_is_the_verdicts_and_what_it_cannot_show():
    first = "\n".join((REPO_ROOT / "README.md").read_text().splitlines()[:40])
    assert "re-implementation" in first and "miniature" in first
    assert "<!-- summary:start -->" in first and "<!-- summary:end -->" in first and "**Verdicts" in first
    assert "cannot show" in first and "The paper's own values" in first
    assert "mybinder.org" in first and "voila" in first and "lab%2Ftree" in first
    assert "reproduced" not in first.splitlines()[0]
