"""The explorer without a browser: set widget values in Python, compare what is shown with the library.

The pattern of scikit-hep/iminuit's tests/test_ipywidget.py: drive the ipywidgets objects directly,
then check the displayed numbers against ``oracle_loss``, the mixture and the exact frontier.
Also: the name-based API of LossMatrix and subset_frontier, the selection numbers on hand-computed
cases, and the light base install (no torch, transformers or datasets imported by analysis, report
or the explorer).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import numpy as np
import pandas as pd
import pytest

from mmlaw_utils.analysis.lossmatrix import loss_matrix_from_arrays
from mmlaw_utils.analysis.mixture import mixture_loss, subset_mixture_losses
from mmlaw_utils.analysis.oracle import oracle_loss, win_shares
from mmlaw_utils.analysis.selection import (heldout_mixture, selection_numbers, text_gains,
                                            win_share_table)
from mmlaw_utils.analysis.subsets import brute_force_points, frontier_of, subset_frontier

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "mmlaw_utils"

# 3 models x 4 texts, nats; worked by hand below
HAND = np.array([[10.0, 20.0, 30.0, 40.0],
                 [12.0, 18.0, 35.0, 38.0],
                 [11.0, 25.0, 28.0, 45.0]])


def _small_lm(seed: int = 0, k: int = 7, n: int = 40):
    rng = np.random.default_rng(seed)
    families = ["fa", "fa", "fa", "fb", "fb", "fc", "fc"][:k]
    params = [100, 300, 900, 150, 500, 200, 700][:k]
    base = rng.uniform(50, 100, size=n)
    L = base[None, :] + rng.normal(0, 4, size=(k, n)) - 3 * np.log(np.asarray(params))[:, None]
    names = [f"models/{f}-{p}" for f, p in zip(families, params)]
    return loss_matrix_from_arrays(L, names, [f"t{i:03d}" for i in range(n)], families, params)


# ---------------------------------------------------------------- name-based API


def test_loss_matrix_rows_and_select_by_name():
    lm = _small_lm()
    assert lm.rows(["models/fb-500", "models/fa-100"]).tolist() == [4, 0]
    sub = lm.select(["models/fc-700", "models/fa-300"])
    assert sub.model_names == ["models/fc-700", "models/fa-300"]
    np.testing.assert_array_equal(sub.to_array(), lm.to_array()[[6, 1]])
    assert sub.text_ids == lm.text_ids and sub.params.tolist() == [700, 300]
    with pytest.raises(KeyError, match="models/nope"):
        lm.rows(["models/fa-100", "models/nope"])


def test_subset_frontier_rows_name_their_members():
    lm = _small_lm()
    front = subset_frontier(lm.to_array(), lm.params, model_names=lm.model_names)
    plain = subset_frontier(lm.to_array(), lm.params)
    pd.testing.assert_frame_equal(front.drop(columns="members"), plain)
    for subset, members in zip(front["subset"], front["members"]):
        assert members == tuple(lm.model_names[i] for i in subset)
    with pytest.raises(ValueError, match="2 names for 7 models"):
        subset_frontier(lm.to_array(), lm.params, model_names=["a", "b"])


# ---------------------------------------------------------------- selection numbers by hand


def test_selection_numbers_hand_case():
    numbers = selection_numbers(HAND, [1, 2, 4], [0, 1])
    # per-text minima of rows 0 and 1: 10, 18, 30, 38 -> 24; means: row 0 25, row 1 25.75
    assert numbers.oracle_loss == pytest.approx(24.0)
    assert numbers.best_member == 0 and numbers.best_member_loss == pytest.approx(25.0)
    assert numbers.gain == pytest.approx(1.0) and numbers.params == 3
    # uniform mixture of two: -log(0.5 e^-a + 0.5 e^-b) per text
    per_text = [-np.log(0.5 * np.exp(-a) + 0.5 * np.exp(-b)) for a, b in zip(HAND[0], HAND[1])]
    assert numbers.mixture_uniform == pytest.approx(np.mean(per_text))
    fitted = heldout_mixture(HAND, [0, 1])
    reference = subset_mixture_losses(HAND, [[0, 1]], np.array([1, 2, 4]))
    assert fitted.mixture_fitted == pytest.approx(reference["mix_fitted"].iloc[0], abs=1e-12)
    assert fitted.oracle == pytest.approx(reference["oracle"].iloc[0], abs=1e-12)
    assert fitted.best_member == pytest.approx(reference["best_single"].iloc[0], abs=1e-12)
    assert sum(fitted.weights) == pytest.approx(1.0)


def test_win_share_table_overall_and_per_domain_hand_case():
    table = win_share_table(HAND, [0, 1, 2], ["a", "a", "b", "b"])
    # winners: text0 row0, text1 row1, text2 row2, text3 row1
    assert table.index.tolist() == [0, 1, 2]
    assert table["all"].tolist() == pytest.approx([0.25, 0.5, 0.25])
    assert table["a"].tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert table["b"].tolist() == pytest.approx([0.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="3 labels for 4 texts"):
        win_share_table(HAND, [0, 1], ["a", "b", "c"])


def test_text_gains_sorted_by_gain_over_the_best_member():
    gains = text_gains(HAND, [0, 1])
    # best member row 0; gains per text: 0, 2, 0, 2 -> texts 1 and 3 first (text order within ties)
    assert gains["text"].tolist() == [1, 3, 0, 2]
    assert gains["gain"].tolist() == pytest.approx([2.0, 2.0, 0.0, 0.0])
    assert gains["winner"].tolist() == [1, 1, 0, 0]


def _segments_frame() -> pd.DataFrame:
    rows = []
    # text "t1" = "ab|cd|é!" split in three byte ranges (é is 2 bytes); model m1 wins segments 0 and 2, m2 segment 1
    for model, losses in (("m1", [1.0, 5.0, 2.0]), ("m2", [3.0, 4.0, 2.0]), ("m3", [9.0, 9.0, 9.0])):
        for seg, (start, end) in enumerate([(0, 2), (2, 4), (4, 7)]):
            rows.append({"model": model, "text_id": "t1", "segment": seg, "byte_start": start, "byte_end": end,
                         "nll": losses[seg]})
        rows.append({"model": model, "text_id": "t2", "segment": 0, "byte_start": 0, "byte_end": 1, "nll": 1.0})
    return pd.DataFrame(rows)


def _segment_dir(root: Path, models: tuple[str, ...] = ("m1", "m2", "m3")) -> Path:
    """A data folder with word segment files of ``models``, one file per model as the scorer writes them."""
    folder = root / "segments" / "word"
    folder.mkdir(parents=True, exist_ok=True)
    frame = _segments_frame()
    for model in models:
        frame[frame["model"] == model].to_parquet(folder / f"{model}__000000000000.parquet", index=False)
    return root


def test_explorer_reads_the_segment_files_of_the_models_that_have_them(tmp_path):
    from mmlaw_utils.report.explorer import read_segments

    lm = loss_matrix_from_arrays(np.array([[5.0, 1.0], [6.0, 2.0], [9.0, 9.0]]), ["m1", "m2", "m3"], ["t1", "t2"],
                                 ["a", "b", "c"], [1, 2, 3])
    assert read_segments(tmp_path, lm) is None  # no segment files: plain text
    seg = read_segments(_segment_dir(tmp_path / "two", ("m2", "m1")), lm)
    assert seg.segmentation == "word" and seg.model_names == ("m1", "m2") and seg.text_ids == ("t1", "t2")
    np.testing.assert_array_equal(seg.losses[1], [3.0, 4.0, 2.0, 1.0])
    np.testing.assert_array_equal(seg.byte_end, [2, 4, 7, 1])


# ---------------------------------------------------------------- the widgets


def _need_widgets() -> None:
    """Skip outside CI when ipywidgets is missing (a .venv set up before the base install had it); fail in CI."""
    if os.environ.get("CI"):
        import ipywidgets  # noqa: F401  (CI installs the base install: an ImportError here is a failure)
    else:
        pytest.importorskip("ipywidgets", reason="ipywidgets is not installed: run ./run_all.sh --setup-only")


@pytest.fixture()
def explorer(tmp_path):
    _need_widgets()
    from mmlaw_utils.report.explorer import Explorer, ExplorerData

    lm = _small_lm()
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text_id": t, "text": f"text {t} ab|cd|é!"}) + "\n" for t in lm.text_ids))
    domains = np.array(["x", "y"] * (lm.shape[1] // 2), dtype=object)
    data = ExplorerData(profile="test", lm=lm, domains=domains, dataset=str(texts))
    return Explorer("test", data=data, profiles=["test"])


def _shown(html: str, css: str) -> float:
    return float(re.search(rf'class="mmlaw-{css}" data-value="([^"]+)"', html).group(1))


def test_explorer_starts_on_the_best_single_model(explorer):
    L = explorer.data.L
    best = int(np.argmin(L.mean(axis=1)))
    assert explorer.models.value == (explorer.data.lm.model_names[best],)
    assert _shown(explorer.numbers_view.value, "oracle-loss") == oracle_loss(L, [best])
    assert _shown(explorer.numbers_view.value, "gain") == 0.0


def test_selecting_models_shows_the_library_numbers(explorer):
    lm, L = explorer.data.lm, explorer.data.L
    names = ["models/fa-300", "models/fc-700", "models/fb-150"]
    explorer.models.value = tuple(names)  # what a click in the list does
    rows = [1, 6, 3]
    page = explorer.numbers_view.value
    assert _shown(page, "oracle-loss") == oracle_loss(L, rows)
    best = min(rows, key=lambda r: L[r].mean())
    assert _shown(page, "best-member-loss") == pytest.approx(L[best].mean(), abs=1e-12)
    assert _shown(page, "gain") == pytest.approx(L[best].mean() - oracle_loss(L, rows), abs=1e-12)
    assert _shown(page, "mixture-uniform") == pytest.approx(mixture_loss(L, rows), abs=1e-12)
    assert "fitting" in page or "mixture-fitted" in page  # EM runs after the other numbers are shown
    assert explorer.wait_for_mixture().members == tuple(rows)
    reference = subset_mixture_losses(L, [rows], lm.params)
    page = explorer.numbers_view.value
    assert _shown(page, "mixture-fitted") == pytest.approx(reference["mix_fitted"].iloc[0], abs=1e-12)
    assert _shown(page, "heldout-oracle") == pytest.approx(reference["oracle"].iloc[0], abs=1e-12)
    assert _shown(page, "params") == pytest.approx((300 + 700 + 150) / explorer.unit)
    np.testing.assert_allclose(explorer.shares["all"].to_numpy(), win_shares(L, rows))
    x_mask = explorer.data.domains == "x"
    np.testing.assert_allclose(explorer.shares["x"].to_numpy(), win_shares(L[:, x_mask], rows))
    assert "fa-300" in explorer.shares_view.value and "%" in explorer.shares_view.value
    # the plot marks the selection at (P, oracle loss)
    mark = explorer.figure.data[-1]
    assert list(mark.x) == pytest.approx([1150 / explorer.unit]) and list(mark.y) == [oracle_loss(L, rows)]
    # texts sorted by gain; the first one is shown with each member's loss and the winner starred
    gains = text_gains(L, rows)
    assert [value for _, value in explorer.texts.options[:5]] == gains["text"].head(5).tolist()
    first = int(gains["text"].iloc[0])
    winner = lm.model_names[int(gains["winner"].iloc[0])].split("/")[-1]
    assert f"★ {winner}" in explorer.text_view.value and lm.text_ids[first] in explorer.text_view.value
    assert f"text {lm.text_ids[first]}" in explorer.text_view.value  # the text itself


def test_presets_family_best_single_and_frontier_budget(explorer):
    lm, L = explorer.data.lm, explorer.data.L
    explorer.family.value = "fb"
    explorer.family_button.click()
    assert explorer.models.value == ("models/fb-150", "models/fb-500")
    explorer.best_button.click()
    assert explorer.models.value == (lm.model_names[int(np.argmin(L.mean(axis=1)))],)
    # the exact frontier equals brute force over all 2^7 - 1 subsets
    brute = frontier_of(brute_force_points(L, lm.params))
    front = explorer.data.exact_frontier()
    assert front["loss"].tolist() == pytest.approx(brute["loss"].tolist(), abs=1e-9)
    assert front["params"].tolist() == brute["params"].tolist()
    for budget in (400, 1000, 2000, int(lm.params.sum())):
        explorer.budget.value = budget / explorer.unit  # moving the slider selects the frontier point
        within = brute[brute["params"] <= budget]
        expected = within.sort_values("loss", kind="stable").iloc[0]
        assert explorer.numbers.oracle_loss == pytest.approx(expected["loss"], abs=1e-9)
        assert explorer.numbers.params == expected["params"] <= budget
    # the frontier trace of the plot is the exact frontier
    trace = next(t for t in explorer.figure.data if t.name.startswith("exact any-size frontier"))
    assert list(trace.y) == pytest.approx(front["loss"].tolist())
    assert "branch and bound" in trace.name
    assert "+" in trace.text[-1] and "P=" in trace.text[-1]  # hover shows members, P and loss


def test_plot_holds_singles_and_same_and_cross_family_pairs(explorer):
    names = [t.name for t in explorer.figure.data]
    assert names[:3] == ["single models", "same-family pairs", "cross-family pairs"]
    same, cross = explorer.figure.data[1], explorer.figure.data[2]
    # 7 models in families of 3, 2, 2: 3 + 1 + 1 same-family pairs, 21 - 5 cross-family
    assert len(same.x) == 5 and len(cross.x) == 16
    L = explorer.data.L
    assert sorted(same.y) == pytest.approx(sorted([oracle_loss(L, p) for p in ([0, 1], [0, 2], [1, 2], [3, 4], [5, 6])]))


def test_segments_are_coloured_by_the_winning_member(tmp_path):
    _need_widgets()
    from mmlaw_utils.report.explorer import Explorer, ExplorerData, read_segments

    L = np.array([[5.0, 1.0], [6.0, 2.0], [9.0, 9.0]])
    lm = loss_matrix_from_arrays(L, ["m1", "m2", "m3"], ["t1", "t2"], ["a", "b", "c"], [1, 2, 3])
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"text_id": "t1", "text": "abcdé!"}) + "\n" + json.dumps({"text_id": "t2", "text": "z"}) + "\n")
    data = ExplorerData(profile="test", lm=lm, dataset=str(texts), segments=read_segments(_segment_dir(tmp_path), lm))
    explorer = Explorer("test", data=data, profiles=["test"])
    explorer.select(["m1", "m2"])
    explorer.texts.value = 0  # text t1
    page = explorer.text_view.value
    assert 'title="m1" style="background:#1f77b455">ab</span>' in page
    assert 'title="m2" style="background:#ff7f0e55">cd</span>' in page
    assert 'title="m1" style="background:#1f77b455">é!</span>' in page  # byte range 4..7 decodes to é!
    with pytest.raises(KeyError, match="nope"):
        explorer.select(["m1", "nope"])


def test_explorer_on_the_committed_minipool_losses():
    _need_widgets()
    from mmlaw_utils.report.explorer import Explorer, profiles_with_losses

    assert profiles_with_losses()[0] == "minipool" and {"real", "synthetic"} <= set(profiles_with_losses())
    explorer = Explorer("minipool")
    lm = explorer.data.lm
    assert lm.shape == (30, 2398) and explorer.data.domains is not None
    pick = [lm.model_names[0], lm.model_names[-1]]
    explorer.select(pick)
    assert explorer.numbers.oracle_loss == oracle_loss(lm.to_array(), lm.rows(pick))
    committed = pd.read_parquet(REPO_ROOT / "data" / "minipool" / "subset_frontier.parquet")
    assert explorer.data.exact_frontier()["loss"].tolist() == pytest.approx(committed["loss"].tolist(), abs=1e-9)
    assert list(explorer.shares.columns[:1]) == ["all"] and len(explorer.shares.columns) == 9  # all + 8 domains
    box = explorer.widget()
    assert explorer.widget() is box
    explorer.profile.value = "real"  # another profile: options and plot follow
    assert len(explorer.models.options) == explorer.data.lm.shape[0] == 4
    assert box.children[1].children[1].children == (explorer.figure,)
    assert len(explorer.figure.data[0].x) == 4


# ---------------------------------------------------------------- the light install


LIGHT_CHECK = """
import importlib, pkgutil, sys
import mmlaw_utils, mmlaw_utils.analysis, mmlaw_utils.report
names = ["mmlaw_utils." + m.name for m in pkgutil.iter_modules(mmlaw_utils.__path__) if not m.ispkg and m.name != "__main__"]
for package in (mmlaw_utils.analysis, mmlaw_utils.report):
    names += [package.__name__ + "." + m.name for m in pkgutil.iter_modules(package.__path__)]
names += ["mmlaw_utils.scoring.assemble", "mmlaw_utils.scoring.expect", "mmlaw_utils.scoring.run"]
for name in names:
    importlib.import_module(name)
heavy = sorted(m for m in ("torch", "transformers", "datasets", "tokenizers", "accelerate", "gensim") if m in sys.modules)
print(len(names), "|" + ",".join(heavy))
"""


def test_analysis_report_and_explorer_import_no_torch_transformers_or_datasets():
    result = subprocess.run([sys.executable, "-c", LIGHT_CHECK], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    count, heavy = result.stdout.strip().split(" |")
    assert int(count) >= 35  # every top-level, analysis and report module, the explorer among them
    assert (PACKAGE / "report" / "explorer.py").is_file()
    assert heavy == "", f"imported at import time: {heavy}"


def test_notebook_02s_cache_check_needs_no_torch():
    check = ("import sys\nfrom mmlaw_utils.scoring.expect import profile_expectation\n"
             "from mmlaw_utils.config import load_profile\n"
             "e = profile_expectation('minipool', load_profile('minipool').cache_dir)\n"
             "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", check], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_explore_notebook_is_paired_thin_and_parameterised():
    script, paired = REPO_ROOT / "notebooks" / "explore.py", REPO_ROOT / "notebooks" / "explore.ipynb"
    from_py, from_ipynb = jupytext.read(script), jupytext.read(paired)
    cells = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
    assert cells(from_py) == cells(from_ipynb), "run jupytext --sync notebooks/explore.py"
    tagged = [c for c in from_py.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and 'profile = "minipool"' in tagged[0].source
    assert from_py.cells[0].cell_type == "markdown" and "§" in from_py.cells[0].source
    code = [c.source for c in from_py.cells if c.cell_type == "code"]
    assert sum(len(c.splitlines()) for c in code) <= 12, "the explorer's logic belongs in mmlaw_utils.report.explorer"
    assert all(not c.outputs for c in jupytext.read(paired).cells if c.cell_type == "code")
