"""The one command line (python -m mmlaw_utils): every command has --help, and no module keeps its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from mmlaw_utils import cli
from mmlaw_utils.envcheck import unmet_pins

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("run", "score", "stale", "launch", "synth", "readme", "real", "pool", "textset", "sources", "subset",
            "minipool", "arms", "segments", "lab-hook")
NESTED = {"real": ("install", "status", "path", "prefix-check", "prefix-table"), "subset": ("build", "check"),
          "minipool": ("build", "recipe", "score")}


def test_help_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "mmlaw_utils", "--help"], capture_output=True, text=True,
                            check=True, cwd=REPO_ROOT)
    listed = [line.split()[0] for line in result.stdout.split("COMMAND\n", 2)[-1].splitlines()
              if line.startswith("    ") and not line.startswith("     ")]
    assert tuple(listed) == COMMANDS


@pytest.mark.parametrize("argv", [[c] for c in COMMANDS] + [[c, a] for c, actions in NESTED.items() for a in actions],
                         ids=" ".join)
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: python -m mmlaw_utils {' '.join(argv)}" in capsys.readouterr().out


def test_nested_commands_list_their_actions(capsys):
    for command, actions in NESTED.items():
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        out = capsys.readouterr().out
        assert all(action in out for action in actions), command


def test_no_module_but_main_has_its_own_entry_point():
    offenders = []
    for path in sorted((REPO_ROOT / "mmlaw_utils").rglob("*.py")):
        tree = ast.parse(path.read_text())
        imports_argparse = any(isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names)
                               for node in ast.walk(tree))
        main_guard = any(isinstance(node, ast.Constant) and node.value == "__main__" for node in ast.walk(tree))
        if path.name not in ("cli.py", "__main__.py") and (main_guard or imports_argparse):
            offenders.append(str(path.relative_to(REPO_ROOT)))
    assert offenders == []


def test_a_command_error_is_one_line_naming_the_command(capsys):
    assert cli.main(["synth", "--profile", "minipool"]) == 1
    err = capsys.readouterr().err
    assert err == "python -m mmlaw_utils synth: error: profile 'minipool' has no synthetic: block; nothing to generate\n"
    assert cli.main(["run", "--profile", "nosuchprofile"]) == 1
    assert "profile 'nosuchprofile' not found" in capsys.readouterr().err


def test_unmet_pins_names_missing_and_mismatched_packages(tmp_path):
    import pandas

    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\n'
        f'dependencies = ["pandas=={pandas.__version__}", "pandas==0.0.1", "surely-not-installed-pkg==1.0"]\n'
        '[project.optional-dependencies]\ntest = ["pytest>=1"]\n')
    assert unmet_pins(pyproject) == ["pandas==0.0.1", "surely-not-installed-pkg==1.0", "pytest>=1"]
    pyproject.write_text(f'[project]\nname = "x"\ndependencies = ["pandas=={pandas.__version__}"]\n')
    assert unmet_pins(pyproject) == []


def _documented(text: str) -> set[str]:
    """Names quoted as ``code`` (rst) or `code` (markdown) in ``text``."""
    import re

    return {a or b for a, b in re.findall(r"``([A-Za-z_.]+)``|`([A-Za-z_.]+)`", text)}


def test_package_docstring_maps_every_module():
    import mmlaw_utils

    modules = {".".join(path.relative_to(REPO_ROOT / "mmlaw_utils").with_suffix("").parts)
               for path in (REPO_ROOT / "mmlaw_utils").rglob("*.py") if path.name != "__init__.py"}
    assert modules - _documented(mmlaw_utils.__doc__) == set()


def test_every_profile_key_is_documented_in_config_and_readme():
    import dataclasses

    import yaml

    from mmlaw_utils import config

    keys = {f.name for f in dataclasses.fields(config.Profile)} - {"name"}
    scoring = set(config._SCORING_DEFAULTS)
    for path in (REPO_ROOT / "configs" / "profiles").glob("*.yaml"):
        raw = yaml.safe_load(path.read_text())
        keys |= set(raw)
        scoring |= set(raw.get("scoring") or {})
    readme = (REPO_ROOT / "README.md").read_text()
    profile_section = readme[readme.index("## Profiles and outputs"):readme.index("## The notebooks")]
    assert keys | scoring <= _documented(config.__doc__)
    assert keys | scoring <= _documented(profile_section)
