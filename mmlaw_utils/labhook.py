"""Jupyter pre-save hook: the tracked source notebooks (``notebooks/NN_name.ipynb``) are saved without outputs.

``python -m mmlaw_utils lab-hook`` (run by ``./run_all.sh`` when it sets up an environment, and by Binder's ``postBuild``)
writes ``<env>/etc/jupyter/jupyter_server_config.d/mmlaw.json``, which names this hook for every Jupyter
server of that environment (Lab, Voila). So running a notebook in Lab from a fresh clone never writes
outputs into a tracked file, with no per-user git config (a git clean filter such as nbstripout would need
one). The executed notebooks with every output are the run's (``runs/<profile>/``) and, for the default
profile, ``data/minipool/notebooks/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mmlaw_utils.config import REPO_ROOT

SOURCE_NOTEBOOKS = REPO_ROOT / "notebooks"
SERVER_CONFIG = {"ContentsManager": {"pre_save_hook": "mmlaw_utils.labhook.strip_source_notebook"}}


def strip_source_notebook(model: dict[str, Any], path: str, contents_manager: Any = None, **kwargs: Any) -> None:
    """Clear outputs and execution counts of a notebook about to be saved into ``notebooks/`` (other files untouched)."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    locate = getattr(contents_manager, "_get_os_path", None)
    os_path = Path(locate(path) if locate is not None else path).resolve()
    if os_path.parent != SOURCE_NOTEBOOKS.resolve() or os_path.suffix != ".ipynb":
        return
    for cell in model["content"].get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            cell.get("metadata", {}).pop("execution", None)


def install_server_config(prefix: str | Path = sys.prefix) -> Path:
    """Write the Jupyter server config that enables the hook into the environment at ``prefix``; return its path."""
    from mmlaw_utils.io import atomic_write_text

    path = Path(prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "mmlaw.json"
    atomic_write_text(path, json.dumps(SERVER_CONFIG, indent=2) + "\n")
    return path
