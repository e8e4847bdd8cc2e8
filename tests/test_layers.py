"""The layers of mmlaw_utils: analysis returns numbers and frames (no figures, no files); scoring and report touch files."""

from __future__ import annotations

import ast
from pathlib import Path

import mmlaw_utils

PACKAGE_DIR = Path(mmlaw_utils.__file__).resolve().parent
# drawing and writing belong to report/ (and the atomic writers of mmlaw_utils.io)
DRAWING_OR_WRITING_IMPORTS = ("matplotlib", "seaborn", "mmlaw_utils.io", "mmlaw_utils.report")
WRITING_CALLS = {"to_csv", "to_parquet", "to_json", "write_text", "write_bytes", "write_table", "savefig"}
# reading files belongs to scoring/ (scoring.assemble reads caches and the loss-matrix files)
READING_IMPORTS = ("pyarrow.parquet", "mmlaw_utils.scoring.cache", "mmlaw_utils.scoring.assemble")
READING_CALLS = {"open", "read_parquet", "read_csv", "read_json", "read_table", "read_text", "read_bytes",
                 "glob", "rglob", "iterdir", "is_file", "exists", "load_loss_matrix", "read_cache"}


def imported_names(tree: ast.AST) -> set[str]:
    """Dotted names of every module imported anywhere in ``tree`` (``from a import b`` gives a and a.b)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def writing_calls(tree: ast.AST) -> set[str]:
    """Names of the file-writing or drawing methods called anywhere in ``tree``."""
    return {node.func.attr for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITING_CALLS}


def reading_calls(tree: ast.AST) -> set[str]:
    """Names of the file-reading functions or methods (``open``, ``x.read_parquet``) called anywhere in ``tree``."""
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name in READING_CALLS:
                called.add(name)
    return called


def reading_offences(path: Path) -> list[str]:
    """What in the module ``path`` reads files: file-reading imports and calls."""
    tree = ast.parse(path.read_text(), filename=str(path))
    bad_imports = sorted(n for n in imported_names(tree) if n.startswith(READING_IMPORTS))
    return bad_imports + sorted(f"{call}()" for call in reading_calls(tree))


def layer_offences(path: Path) -> list[str]:
    """What in the module ``path`` draws or writes: forbidden imports and writing calls."""
    tree = ast.parse(path.read_text(), filename=str(path))
    bad_imports = sorted(n for n in imported_names(tree) if n.startswith(DRAWING_OR_WRITING_IMPORTS))
    return bad_imports + sorted(f"{call}()" for call in writing_calls(tree))


def test_layer_offences_are_found(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("def f(frame, path):\n    import matplotlib.pyplot as plt\n    frame.to_csv(path)\n")
    assert layer_offences(module) == ["matplotlib.pyplot", "to_csv()"]
    clean = tmp_path / "clean.py"
    clean.write_text("import numpy as np\nfrom mmlaw_utils.analysis import oracle\n\ndef f(frame):\n    return frame.mean()\n")
    assert layer_offences(clean) == []


def test_reading_offences_are_found(tmp_path):
    module = tmp_path / "reads.py"
    module.write_text("import pyarrow.parquet as pq\n\ndef f(path):\n    with open(path) as h:\n        return pq.read_table(h)\n")
    assert reading_offences(module) == ["pyarrow.parquet", "open()", "read_table()"]
    clean = tmp_path / "clean.py"
    clean.write_text("import numpy as np\n\ndef f(values):\n    return np.asarray(values).sum()\n")
    assert reading_offences(clean) == []


def test_analysis_reads_no_file():
    offences = {path.name: found for path in sorted((PACKAGE_DIR / "analysis").glob("*.py"))
                if (found := reading_offences(path))}
    assert offences == {}


def test_analysis_draws_nothing_and_writes_nothing():
    offences = {path.name: found for path in sorted((PACKAGE_DIR / "analysis").glob("*.py"))
                if (found := layer_offences(path))}
    assert offences == {}


def test_scoring_and_analysis_do_not_import_report():
    upward = {str(path.relative_to(PACKAGE_DIR)): names
              for layer in ("scoring", "analysis") for path in sorted((PACKAGE_DIR / layer).glob("*.py"))
              if (names := sorted(n for n in imported_names(ast.parse(path.read_text())) if n.startswith("mmlaw_utils.report")))}
    assert upward == {}
