"""Running a notebook in Lab never writes outputs into the tracked notebooks/*.ipynb (issue 22, clean runs)."""

from __future__ import annotations

import json

import nbformat
from jupyter_server.services.contents.filemanager import FileContentsManager
from traitlets.config import Config

from mmlaw_utils import labhook


def _executed_notebook() -> dict:
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1 + 1", execution_count=3)
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=3)]
    notebook.cells = [nbformat.v4.new_markdown_cell("# §2"), cell]
    return json.loads(nbformat.writes(notebook))


def test_the_installed_server_config_strips_outputs_of_source_notebooks_only(tmp_path, monkeypatch):
    config_file = labhook.install_server_config(tmp_path / "env")
    assert config_file == tmp_path / "env" / "etc" / "jupyter" / "jupyter_server_config.d" / "mmlaw.json"
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "scratch").mkdir()
    monkeypatch.setattr(labhook, "SOURCE_NOTEBOOKS", root / "notebooks")
    # the contents manager Lab uses, configured only by the installed file (the hook is named by import string)
    manager = FileContentsManager(root_dir=str(root), config=Config(json.loads(config_file.read_text())))
    for path in ("notebooks/03_oracle_pairs.ipynb", "scratch/mine.ipynb"):
        manager.save({"type": "notebook", "format": "json", "content": _executed_notebook()}, path)
    source = nbformat.read(root / "notebooks" / "03_oracle_pairs.ipynb", as_version=4)
    scratch = nbformat.read(root / "scratch" / "mine.ipynb", as_version=4)
    assert source.cells[1].outputs == [] and source.cells[1].execution_count is None
    assert source.cells[1].source == "1 + 1" and source.cells[0].source == "# §2"
    assert scratch.cells[1].outputs[0]["data"]["text/plain"] == "2"  # notebooks elsewhere keep their outputs
