"""Stratified subsets of a held-out set with domains (profile real): hand-made cases and the committed subset."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mmlaw_utils import textsubset
from mmlaw_utils.config import REPO_ROOT


def _frame() -> pd.DataFrame:
    # domain a: doc a1 has 4 texts, a2 has 1; domain b: 2 docs of 1 text; domain c: 1 text
    rows = [("a1-0", "a", "a1"), ("a1-1", "a", "a1"), ("b1-0", "b", "b1"), ("a2-0", "a", "a2"),
            ("a1-2", "a", "a1"), ("c1-0", "c", "c1"), ("a1-3", "a", "a1"), ("b2-0", "b", "b2")]
    return pd.DataFrame(rows, columns=["text_id", "domain", "source"]).assign(text=lambda f: "t " + f.text_id)


def test_every_domain_gets_its_quota_spread_over_documents():
    subset = textsubset.stratified_subset(_frame(), per_domain=2, seed=0)
    assert subset.groupby("domain").size().to_dict() == {"a": 2, "b": 2, "c": 1}
    # two texts of domain a come from two documents (round-robin), not two from a1
    assert set(subset[subset.domain == "a"].source) == {"a1", "a2"}
    assert list(subset.index) == sorted(subset.index)  # file order kept


def test_a_large_quota_takes_everything_and_seeds_change_only_the_choice():
    frame = _frame()
    assert textsubset.stratified_subset(frame, per_domain=10).equals(frame)
    picks = {tuple(textsubset.stratified_subset(frame, per_domain=3, seed=s).text_id) for s in range(8)}
    assert len(picks) > 1  # the seed matters ...
    for seed in range(8):  # ... but never the quota or the spread: a2's only text is always in
        subset = textsubset.stratified_subset(frame, per_domain=3, seed=seed)
        assert (subset.domain == "a").sum() == 3 and "a2-0" in set(subset.text_id)
        assert subset.equals(textsubset.stratified_subset(frame, per_domain=3, seed=seed))


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="domain"):
        textsubset.stratified_subset(_frame().drop(columns="domain"), 2)
    with pytest.raises(ValueError, match="per_domain"):
        textsubset.stratified_subset(_frame(), 0)
    with pytest.raises(ValueError, match="duplicate"):
        textsubset.stratified_subset(pd.concat([_frame(), _frame()]), 2)


def test_build_keeps_lines_verbatim_and_check_detects_edits(tmp_path):
    source = tmp_path / "set.jsonl"
    frame = _frame()
    lines = [json.dumps(r, ensure_ascii=False) for r in frame.to_dict("records")]
    lines[0] = lines[0].replace('"t a1-0"', '"t a1-0 \\u00e9"')  # an escape kept as written
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "sub.jsonl"
    manifest = textsubset.build(source, out, per_domain=1, seed=3)
    written = out.read_text().splitlines()
    assert set(written) <= set(lines) and len(written) == 3 == manifest["n_texts"]
    assert manifest["domains"] == {"a": 1, "b": 1, "c": 1}
    assert textsubset.check(out) == []
    out.write_text(out.read_text().replace("t ", "T "))
    assert any("differs from its rebuild" in p for p in textsubset.check(out))
    source.write_text(source.read_text() + json.dumps({"text_id": "c1-1", "domain": "c", "source": "c2", "text": "x"}) + "\n")
    assert any("changed since" in p for p in textsubset.check(out))


def test_committed_real_subset_matches_its_rebuild():
    """data/texts/mixed_real.jsonl is the stratified subset its manifest says (>= 600 texts, every domain)."""
    out = REPO_ROOT / "data" / "texts" / "mixed_real.jsonl"
    if not textsubset.manifest_path(out).is_file():
        pytest.skip("no committed subset for profile real yet")
    assert textsubset.check(out) == []
    manifest = json.loads(textsubset.manifest_path(out).read_text())
    _, source = textsubset.read_jsonl_lines(REPO_ROOT / manifest["source"])
    assert manifest["n_texts"] >= 600 and set(manifest["domains"]) == set(source["domain"])
