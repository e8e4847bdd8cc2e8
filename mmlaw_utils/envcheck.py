"""Whether ``.venv`` already holds every exact pin of pyproject.toml (run_all.sh then needs no network).

Standard library only: run_all.sh calls it before the project's dependencies may be installed.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
RUN_ALL_EXTRAS = ("score", "build", "test")  # run_all.sh: pip install -e ".[score,build,test]"
_PIN = re.compile(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^;\s]+)")


def unmet_pins(pyproject: Path = PYPROJECT) -> list[str]:
    """Requirements (dependencies + the extras run_all.sh installs) not installed at exactly their pinned version."""
    project = tomllib.loads(Path(pyproject).read_text())["project"]
    extras = project.get("optional-dependencies", {})
    wanted = project["dependencies"] + [r for name in RUN_ALL_EXTRAS for r in extras.get(name, [])]
    unmet = []
    for requirement in wanted:
        match = _PIN.fullmatch(requirement.strip())
        if not match:
            unmet.append(requirement)
            continue
        try:
            have = metadata.version(match.group(1))
        except metadata.PackageNotFoundError:
            unmet.append(requirement)
            continue
        if have.split("+")[0] != match.group(3):
            unmet.append(requirement)
    return unmet


def pins_satisfied(pyproject: Path = PYPROJECT) -> bool:
    """True when every pin is installed (the pipeline imports mmlaw_utils from its own checkout)."""
    return not unmet_pins(pyproject)
