"""The oracle at every granularity (analysis/granularity.py) against the text-level machinery and brute force."""

from __future__ import annotations

import itertools
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmlaw_utils.analysis import granularity as gran
from mmlaw_utils.analysis.bootstrap import bootstrap_counts, bootstrap_group_fits
from mmlaw_utils.analysis.frontier import collaboration_groups
from mmlaw_utils.analysis.mixture import mixture_loss
from mmlaw_utils.analysis.oracle import pair_oracle_losses, win_shares
from mmlaw_utils.analysis.subsets import frontier_of
from mmlaw_utils.config import REPO_ROOT, load_profile

NOTEBOOKS = REPO_ROOT / "notebooks"


def segment_frame(losses: np.ndarray, lengths: np.ndarray, models: list[str], text_ids: list[str],
                  seed: int = 0) -> pd.DataFrame:
    """Long-form segment table for a models x segments loss array; byte spans tile each text (1-4 bytes per segment)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, losses.shape[1])
    text = np.repeat(np.arange(lengths.size), lengths)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    index = np.arange(losses.shape[1]) - starts[text]
    end = np.cumsum(sizes)
    end = end - np.r_[0, end[starts[1:] - 1]][text]  # restart at 0 in every text
    frames = [pd.DataFrame({"model": m, "text_id": np.asarray(text_ids)[text], "segment": index,
                            "byte_start": end - sizes, "byte_end": end, "nll": losses[k]})
              for k, m in enumerate(models)]
    return pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed)  # any row order


def random_pool(seed: int = 0, n_models: int = 6, n_texts: int = 40, max_segments: int = 12):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_segments + 1, n_texts)
    losses = rng.gamma(2.0, 2.0, size=(n_models, int(lengths.sum())))
    models = [f"m{k}" for k in range(n_models)]
    texts = [f"t{i:03d}" for i in range(n_texts)]
    seg = gran.segment_losses_from_frame(segment_frame(losses, lengths, models, texts, seed), "word", models, texts)
    return seg, losses, lengths


def test_pivot_restores_order_bytes_and_text_sums():
    seg, losses, lengths = random_pool()
    np.testing.assert_array_equal(seg.losses, losses)
    np.testing.assert_array_equal(seg.lengths, lengths)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    np.testing.assert_allclose(seg.text_losses(), np.add.reduceat(losses, starts, axis=1))
    assert (seg.byte_start[seg.starts] == 0).all()
    np.testing.assert_array_equal(seg.n_bytes, [seg.byte_end[s + n - 1] for s, n in zip(seg.starts, seg.lengths)])


def test_pivot_errors_name_the_model_and_text():
    losses = np.ones((2, 4))
    frame = segment_frame(losses, np.array([2, 2]), ["a", "b"], ["x", "y"])
    other = frame.copy()
    other.loc[(other["model"] == "b") & (other["text_id"] == "y") & (other["segment"] == 1), "byte_end"] += 1
    with pytest.raises(ValueError, match="model 'b' and model 'a' segment text 'y' differently"):
        gran.segment_losses_from_frame(other, "word", ["a", "b"], ["x", "y"])
    with pytest.raises(ValueError, match="text 'z' has no segments"):
        gran.segment_losses_from_frame(frame, "word", ["a", "b"], ["x", "y", "z"])
    with pytest.raises(ValueError, match="no segments of model 'c'"):
        gran.segment_losses_from_frame(frame, "word", ["a", "b", "c"], ["x", "y"])
    with pytest.raises(ValueError, match="text 'y', not in the text set"):
        gran.segment_losses_from_frame(frame, "word", ["a", "b"], ["x"])
    first = frame[(frame["model"] == "b") & (frame["text_id"] == "x")].iloc[:1]
    with pytest.raises(ValueError, match="model 'b' repeats a segment of text 'x'"):
        gran.segment_losses_from_frame(pd.concat([frame, first]), "word", ["a", "b"], ["x", "y"])
    with pytest.raises(ValueError, match="missing column"):
        gran.segment_losses_from_frame(frame.drop(columns="nll"), "word")
    gap = frame.copy()
    gap.loc[(gap["text_id"] == "y") & (gap["segment"] == 1), "byte_start"] += 1  # every model: bytes left uncovered
    with pytest.raises(ValueError, match="segments of text 'y' do not tile its bytes"):
        gran.segment_losses_from_frame(gap, "word", ["a", "b"], ["x", "y"])


def test_text_granularity_is_the_text_level_oracle():
    seg, losses, lengths = random_pool(1)
    L = seg.text_losses()
    text_seg = gran.segment_losses_from_frame(segment_frame(L, np.ones(L.shape[1], dtype=int), list(seg.model_names),
                                                            list(seg.text_ids)), "text", seg.model_names, seg.text_ids)
    singles = text_seg.text_losses()
    matrix = gran.pair_loss_matrix(singles, gran.pair_text_losses(text_seg))
    np.testing.assert_allclose(matrix, pair_oracle_losses(L), rtol=1e-12)


def test_pair_and_subset_oracles_against_a_loop():
    seg, losses, lengths = random_pool(2)
    starts = seg.starts
    pairs = gran.pair_text_losses(seg)
    row = 0
    for i, j in itertools.combinations(range(seg.shape[0]), 2):
        want = [np.minimum(losses[i, s:s + n], losses[j, s:s + n]).sum() for s, n in zip(starts, lengths)]
        np.testing.assert_allclose(pairs[row], want, rtol=1e-12)
        row += 1
    sub = gran.subset_text_losses(seg, [0, 3, 5])
    np.testing.assert_allclose(sub, [losses[[0, 3, 5], s:s + n].min(axis=0).sum() for s, n in zip(starts, lengths)])
    # a finer oracle is never worse than the text-level one, and equals it for single models
    L = seg.text_losses()
    assert (sub <= L[[0, 3, 5]].min(axis=0) + 1e-12).all()
    np.testing.assert_allclose(gran.subset_text_losses(seg, [4]), L[4])


def test_any_size_frontier_matches_brute_force_over_per_text_oracles():
    seg, _, _ = random_pool(3, n_models=7)
    params = np.array([10, 20, 35, 50, 80, 130, 200]) * 1_000_000
    front = gran.any_size_frontier(seg, params)
    subsets = [s for k in range(1, 8) for s in itertools.combinations(range(7), k)]
    points = pd.DataFrame({"subset": subsets, "params": [int(params[list(s)].sum()) for s in subsets],
                           "loss": [gran.subset_text_losses(seg, s).mean() for s in subsets]})
    want = frontier_of(points)
    np.testing.assert_array_equal(front["params"].to_numpy(), want["params"].to_numpy())
    np.testing.assert_allclose(front["loss"].to_numpy(), want["loss"].to_numpy(), rtol=1e-10)


def test_win_shares_by_hand():
    # two models, text x (domain a): segments of 1 and 3 bytes; text y (domain b): one 2-byte segment, a tie
    losses = np.array([[1.0, 5.0, 2.0], [2.0, 4.0, 2.0]])
    seg = gran.SegmentLosses("word", ("a", "b"), ("x", "y"), losses, np.array([2, 1]), np.array([0, 1, 0]),
                             np.array([1, 4, 2]))
    table = gran.win_share_table(seg, ["d1", "d2"]).set_index(["domain", "model"])
    assert table.loc[("all", "a"), "segment_share"] == pytest.approx(0.5)  # 1 + 0 + 1/2 of 3
    assert table.loc[("all", "a"), "byte_share"] == pytest.approx((1 + 0 + 1) / 6)
    assert table.loc[("d1", "b"), "byte_share"] == pytest.approx(3 / 4)
    assert table.loc[("d2", "a"), "segment_share"] == pytest.approx(0.5)
    for domain, mask in (("all", [True] * 3), ("d1", [True, True, False])):
        np.testing.assert_allclose(table.loc[domain, "segment_share"], win_shares(losses[:, mask]))
    winners = gran.segment_winners(seg, 0, [1, 0])
    assert winners["winner"].tolist() == ["a", "b"]


def test_resampled_fits_equal_the_text_bootstrap_at_text_granularity():
    rng = np.random.default_rng(4)
    n_models, n_texts = 12, 60
    params = np.round(np.geomspace(1e7, 3e9, n_models)).astype(np.int64)
    families = np.array(["f1", "f2", "f3"] * 4)
    scale = 900.0 * (params / 1e9) ** -0.2 + 300
    L = scale[:, None] * rng.lognormal(0, 0.15, size=(n_models, n_texts))
    seg = gran.SegmentLosses("text", tuple(f"m{k}" for k in range(n_models)), tuple(f"t{i}" for i in range(n_texts)),
                             L, np.ones(n_texts, dtype=np.int64), np.zeros(n_texts, dtype=np.int64),
                             np.ones(n_texts, dtype=np.int64))
    counts = bootstrap_counts(n_texts, 20, seed=7)
    ours = gran.resampled_group_fits(seg.text_losses(), gran.pair_text_losses(seg), params, families, counts)
    theirs = bootstrap_group_fits(L, params, families, n_bootstrap=20, seed=7)
    pd.testing.assert_frame_equal(ours[["resample", "group", "n_frontier"]], theirs[["resample", "group", "n_frontier"]])
    np.testing.assert_allclose(ours["alpha"].to_numpy(), theirs["alpha"].to_numpy(), rtol=1e-6, equal_nan=True)


def test_granularity_law_gives_every_claim_one_verdict():
    rng = np.random.default_rng(5)
    n_models, n_texts = 12, 50
    params = np.round(np.geomspace(1e7, 3e9, n_models)).astype(np.int64)
    families = np.array(["f1", "f2", "f3"] * 4)
    lengths = rng.integers(3, 9, n_texts)
    scale = 90.0 * (params / 1e9) ** -0.2 + 30
    losses = scale[:, None] * rng.lognormal(0, 0.3, size=(n_models, int(lengths.sum())))
    seg = gran.SegmentLosses("word", tuple(f"m{k}" for k in range(n_models)), tuple(f"t{i}" for i in range(n_texts)),
                             losses, lengths, np.zeros(lengths.sum(), dtype=np.int64), np.ones(lengths.sum(), dtype=np.int64))
    singles, pairs = seg.text_losses(), gran.pair_text_losses(seg)
    clusters = np.repeat(np.arange(10), 5)
    law = gran.granularity_law(singles, pairs, params, families, seg.model_names, clusters, n_bootstrap=30)
    groups = collaboration_groups(singles, params, families, pair_losses=gran.pair_loss_matrix(singles, pairs))
    for g in groups:
        pd.testing.assert_frame_equal(law.groups[g], groups[g])
    assert set(law.uncertainty["method"]) <= {"text_bootstrap", "cluster_bootstrap", "model_jackknife",
                                              "profile_likelihood"}
    assert len(law.claims) == 3 + 5 and law.claims["verdict"].notna().all()
    gains = gran.relation_gains(singles, pairs, families).set_index("relation")
    assert gains.loc["cross_family", "n_pairs"] == 48 and gains.loc["same_family", "n_pairs"] == 18
    assert (gains["mean_gain"] >= 0).all()


def test_realizable_summary_at_text_granularity_is_the_text_mixture():
    rng = np.random.default_rng(6)
    L = rng.gamma(5.0, 40.0, size=(3, 40))
    n = L.shape[1]
    seg = gran.SegmentLosses("text", ("a", "b", "c"), tuple(map(str, range(n))), L, np.ones(n, dtype=np.int64),
                             np.zeros(n, dtype=np.int64), np.full(n, 100, dtype=np.int64))
    fit, ev = np.arange(0, n, 2), np.arange(1, n, 2)
    row = gran.realizable_summary(seg, fit, ev)
    assert row["switching"] == pytest.approx(mixture_loss(L[:, ev], [0, 1, 2]), rel=1e-12)
    assert row["bayes_mixture"] == pytest.approx(row["switching"], rel=1e-12)
    assert row["oracle"] == pytest.approx(L[:, ev].min(axis=0).mean())
    assert row["best_single"] == pytest.approx(L[:, ev].mean(axis=1).min())
    assert row["oracle"] <= row["best_pair"] <= row["best_single"]
    with_pairs = gran.realizable_summary(seg, fit, ev, pairs=gran.pair_text_losses(seg))
    assert with_pairs["best_pair"] == pytest.approx(row["best_pair"], rel=1e-12)
    assert row["best_pair"] == pytest.approx(min(np.minimum(L[a, ev], L[b, ev]).mean() for a, b in [(0, 1), (0, 2), (1, 2)]))
    assert row["gap"] >= 0 and row["gap"] <= math.log(3) + 1e-9
    assert gran.nats_to_bits_per_byte(row["oracle"], seg.n_bytes[ev]) == pytest.approx(row["oracle"] / 100 / math.log(2))


def test_kept_share_is_nan_when_the_oracle_gains_nothing():
    n = 20
    L = np.vstack([np.full(n, 10.0), np.full(n, 12.0)])  # model a wins everything: no oracle gain
    seg = gran.SegmentLosses("text", ("a", "b"), tuple(map(str, range(n))), L, np.ones(n, dtype=np.int64),
                             np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64))
    row = gran.realizable_summary(seg, np.arange(10), np.arange(10, 20))
    assert row["gain_oracle"] == 0 and math.isnan(row["kept_share"])
    assert row["gain_switching"] < 0  # a mixture pays for not knowing a wins


def test_budget_curves_hold_the_subset_and_bracket_the_estimate():
    seg, _, _ = random_pool(7, n_models=5, n_texts=60)
    params = np.array([1, 2, 4, 8, 16]) * 1_000_000
    front = gran.any_size_frontier(seg, params)
    clusters = np.repeat(np.arange(20), 3)
    fit, ev = np.arange(0, 60, 2), np.arange(1, 60, 2)
    curves = gran.budget_curves({"word": seg}, {"word": front}, [3e6, 31e6], fit, ev, clusters, n_bootstrap=50)
    assert len(curves) == 4
    top = curves[(curves["budget"] == 31e6) & (curves["curve"] == "oracle")].iloc[0]
    assert top["params"] <= 31e6
    assert top["loss"] == pytest.approx(gran.subset_text_losses(seg, top["subset"])[ev].mean())
    assert (curves["lo"] <= curves["loss"]).all() and (curves["loss"] <= curves["hi"]).all()
    switch = curves[curves["curve"] == "switching"].set_index("budget")["loss"]
    oracle = curves[curves["curve"] == "oracle"].set_index("budget")["loss"]
    assert (switch >= oracle - 1e-9).all()


# ---------------------------------------------------------------- report, files, notebook and pipeline (profile real)

REAL_DATA = REPO_ROOT / "data" / "real"


def word_spans(text: str) -> list[tuple[int, int]]:
    """Whitespace-delimited words of ``text``, each with its leading whitespace, as UTF-8 byte spans tiling it."""
    raw = text.encode("utf-8")
    spans = [(m.start(), m.end()) for m in re.finditer(rb"\s*\S+", raw)] or [(0, len(raw))]
    spans[-1] = (spans[-1][0], len(raw))
    return spans


def split_text_losses(L: np.ndarray, models: list[str], text_ids: list[str], texts: dict[str, str],
                      seed: int = 0) -> pd.DataFrame:
    """Word segments whose losses split each text loss of ``L`` at random (test input only, never written to data/)."""
    rng = np.random.default_rng(seed)
    parts = []
    for t, text_id in enumerate(text_ids):
        spans = np.asarray(word_spans(texts[text_id]))
        for k, model in enumerate(models):
            parts.append(pd.DataFrame({"model": model, "text_id": text_id, "segment": np.arange(len(spans)),
                                       "byte_start": spans[:, 0], "byte_end": spans[:, 1],
                                       "nll": L[k, t] * rng.dirichlet(np.full(len(spans), 2.0))}))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def real_words(tmp_path_factory):
    """A data folder with profile real's loss matrix and word segments split from it at random."""
    from mmlaw_utils.scoring.assemble import load_loss_matrix
    from mmlaw_utils.texts import load_texts

    root = tmp_path_factory.mktemp("real_granularity")
    for name in ("loss_matrix.parquet", "models.parquet"):
        shutil.copy(REAL_DATA / name, root / name)
    lm = load_loss_matrix(root)
    texts = load_texts(load_profile("real").dataset)
    frame = split_text_losses(lm.to_array(), lm.model_names, lm.text_ids, dict(zip(texts["text_id"], texts["text"])))
    (root / "segments" / "word").mkdir(parents=True)
    # one file per model, as the scorer writes them
    for model, part in frame.groupby("model"):
        part.to_parquet(root / "segments" / "word" / f"{model.replace(':', '_')}__ce28003666e5.parquet")
    return root, lm, texts, frame


def test_load_segments_reads_every_file_of_a_segmentation(real_words, tmp_path):
    from mmlaw_utils.report import granularity as report

    root, lm, texts, frame = real_words
    assert report.available_segmentations(root) == ["word"]
    seg = report.load_segments(root, "word", lm.model_names[:2], lm.text_ids)
    assert seg.model_names == tuple(lm.model_names[:2]) and seg.shape[1] == len(frame) // 4
    np.testing.assert_allclose(seg.text_losses(), lm.to_array()[:2], rtol=1e-12)
    np.testing.assert_array_equal(seg.n_bytes, [len(texts.set_index("text_id").loc[t, "text"].encode()) for t in lm.text_ids])
    (tmp_path / "segments" / "word").mkdir(parents=True)
    frame.iloc[: len(frame) // 2].to_parquet(tmp_path / "segments" / "word" / "a.parquet")
    frame.iloc[len(frame) // 2 :].to_parquet(tmp_path / "segments" / "word" / "b.parquet")
    again = report.load_segments(tmp_path, "word", lm.model_names, lm.text_ids)
    np.testing.assert_array_equal(again.losses[:2], seg.losses)
    assert report.available_segmentations(tmp_path / "nothing") == []
    with pytest.raises(FileNotFoundError, match="no 'line' segment files"):
        report.load_segments(tmp_path, "line", lm.model_names, lm.text_ids)


def test_models_without_segment_files_are_left_out_and_named(real_words, tmp_path):
    from mmlaw_utils.report import granularity as report

    root, lm, texts, frame = real_words
    folder = tmp_path / "segments" / "word"
    folder.mkdir(parents=True)
    kept = lm.model_names[:3]
    for model in kept:
        frame[frame["model"] == model].to_parquet(folder / f"{model.replace(':', '_')}.parquet")
    results = report.compute_results(lm, texts, tmp_path, "real", n_bootstrap=5, progress=False)
    assert results.model_names == list(kept)
    assert any(lm.model_names[3] in note and "left out" in note for note in results.notes)
    full = report.compute_results(lm.select(kept), texts, tmp_path, "real", n_bootstrap=5, progress=False)
    pd.testing.assert_frame_equal(results.summary, full.summary)


def test_notebook_10_on_word_segments_of_the_real_pool(real_words, tmp_path, monkeypatch):
    import papermill

    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))  # the kernel imports this checkout's mmlaw_utils
    from mmlaw_utils.pipeline import kernel_name

    root, lm, _, _ = real_words
    out = tmp_path / "10.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / "10_granularity.ipynb"), str(out), kernel_name=kernel_name(),
                               parameters={"profile": "real", "data_dir": str(root), "n_bootstrap": 20},
                               cwd=str(NOTEBOOKS), progress_bar=False)
    summary = pd.read_csv(root / "granularity_summary.csv").set_index("granularity")
    assert summary.index.tolist() == ["text", "word"]
    # segments sum to the text losses, so the best single model and the Bayesian mixture do not depend on granularity
    assert summary.loc["word", "best_single"] == pytest.approx(summary.loc["text", "best_single"], rel=1e-9)
    assert summary.loc["word", "bayes_mixture"] == pytest.approx(summary.loc["text", "bayes_mixture"], rel=1e-9)
    assert summary.loc["word", "oracle"] < summary.loc["text", "oracle"] <= summary.loc["text", "best_single"]
    assert (summary["switching"] >= summary["oracle"]).all()
    assert (root / "figures" / "granularity_budgets.png").is_file()
    assert (root / "figures" / "granularity_winners.png").is_file()
    assert "switching mixture" in (root / "granularity.md").read_text()
    claims = pd.read_csv(root / "granularity_claims.csv")
    assert set(claims["granularity"]) == {"text", "word"} and claims["verdict"].notna().all()


def test_notebook_10_says_so_without_segment_files(tmp_path, monkeypatch):
    import papermill

    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    from mmlaw_utils.pipeline import kernel_name

    for name in ("loss_matrix.parquet", "models.parquet"):
        shutil.copy(REAL_DATA / name, tmp_path / name)
    out = tmp_path / "10.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / "10_granularity.ipynb"), str(out), kernel_name=kernel_name(),
                               parameters={"profile": "real", "data_dir": str(tmp_path)}, cwd=str(NOTEBOOKS),
                               progress_bar=False)
    assert "No segment losses for profile `real`" in out.read_text()
    assert not (tmp_path / "granularity_summary.csv").exists()


def test_pipeline_skips_stage_10_without_segments(monkeypatch, tmp_path, capsys):
    from mmlaw_utils import pipeline

    ran = []
    monkeypatch.setattr(pipeline, "execute_notebook", lambda *args, **kwargs: ran.append(args[0]))
    # stage 10 reads stage 02's outputs, which must come with their lineage record and the caches it names
    for name in ("loss_matrix.parquet", "models.parquet", "lineage.json"):
        shutil.copy(REAL_DATA / name, tmp_path / name)
    shutil.copytree(REAL_DATA / "scores", tmp_path / "scores")
    options = pipeline.RunOptions(profile="real", parameters={"data_dir": str(tmp_path)}, start="10", stop="10",
                                  readme="no")
    pipeline.run_pipeline(options, runs_root=tmp_path / "runs")
    assert ran == [] and "[10_granularity] skipped" in capsys.readouterr().out
    (tmp_path / "segments").mkdir()
    pipeline.run_pipeline(options, runs_root=tmp_path / "runs")
    assert ran == ["10_granularity"]


@pytest.mark.parametrize("profile", ["real", "minipool"])
def test_committed_segment_files_tile_and_sum_to_the_committed_text_losses(profile):
    from mmlaw_utils.analysis.lossmatrix import loss_matrix_bytes
    from mmlaw_utils.scoring.assemble import load_loss_matrix
    from mmlaw_utils.scoring.segment_files import available_segmentations, read_segment_table

    data_dir = load_profile(profile).data_dir
    found = available_segmentations(data_dir)
    assert found, f"no segment files committed for profile {profile!r}"
    lm = load_loss_matrix(data_dir)
    for segmentation in found:
        frame = read_segment_table(data_dir, segmentation)
        models = [m for m in lm.model_names if m in set(frame["model"].astype(str))]
        assert models, f"{segmentation}: no model of the loss matrix"
        part = lm.select(models)
        seg = gran.segment_losses_from_frame(frame, segmentation, models, part.text_ids)  # checks the tiling
        np.testing.assert_array_equal(seg.n_bytes, loss_matrix_bytes(part))
        rel, model, text = gran.text_sum_mismatch(seg, part.to_array())
        assert rel <= 1e-6, f"{segmentation}: model {model} text {text}: {rel:.2e}"
