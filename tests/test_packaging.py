"""Packaging: one source of dependency pins, and the entry-point scripts that install from it."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_pyproject_pins_every_dependency_exactly_and_torch_2_13_0():
    project = _pyproject()["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    loose = [r for r in requirements if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.+\-]+", r)]
    assert not loose, f"dependencies without an exact == pin: {loose}"
    assert "torch==2.13.0" in project["dependencies"]
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


def test_run_all_installs_torch_first_then_the_project():
    script = (REPO_ROOT / "run_all.sh").read_text()
    assert 'TORCH_SPEC="torch==2.13.0"' in script
    torch_at = script.index('"$VPY" -m pip install "$TORCH_SPEC"')
    project_at = script.index('"$VPY" -m pip install -e ".[test]"')
    assert torch_at < project_at
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script
    subprocess.run(["bash", "-n", str(REPO_ROOT / "run_all.sh")], check=True)


def test_run_all_help_documents_every_option():
    result = subprocess.run(["bash", str(REPO_ROOT / "run_all.sh"), "--help"], capture_output=True, text=True, check=True)
    for option in ("--profile", "-p KEY VALUE", "--rescore", "--rebuild", "--setup-only", "--test", "--from", "--to",
                   "runs/<profile>/", "non-zero exit"):
        assert option in result.stdout, option
    bad = subprocess.run(["bash", str(REPO_ROOT / "run_all.sh"), "--bogus"], capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown argument: --bogus" in bad.stderr


def test_ci_runs_the_readme_test_command():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "./run_all.sh --test" in ci and "set -euo pipefail" in ci
    readme = (REPO_ROOT / "README.md").read_text()
    assert "./run_all.sh --test" in readme and "./run_all.sh\n" in readme
