"""analysis/realpool.py on hand-made loss matrices (nats per text) with domains."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from mmlaw_utils.analysis import realpool
from mmlaw_utils.analysis.subsets import subset_frontier

# 3 models x 4 texts; texts 0-1 are "code", 2-3 "prose"; model c wins code, a wins prose
L = np.array([
    [10.0, 12.0, 4.0, 6.0],   # a (family f)
    [11.0, 13.0, 5.0, 5.0],   # b (family f)
    [6.0, 8.0, 9.0, 9.0],     # c (family g)
])
BYTES = np.array([10, 20, 30, 40])
NAMES = ["a", "b", "c"]
FAMILIES = ["f", "f", "g"]
PARAMS = [100, 200, 150]
DOMAINS = ["code", "code", "prose", "prose"]


def test_subset_table_hand_computed():
    table = realpool.subset_table(L, BYTES, PARAMS, NAMES, FAMILIES).set_index("models")
    assert len(table) == 7 and len(realpool.subset_table(L, BYTES, PARAMS, NAMES, FAMILIES, min_size=2)) == 4
    # oracle(a, c): per text min = 6, 8, 4, 6 -> 24 / 4 nats; better member alone is c (8.0) vs a (8.0): tie -> a
    row = table.loc["a + c"]
    assert row["loss"] == pytest.approx(6.0) and row["group"] == "cross_family" and row["params"] == 250
    assert row["bits_per_byte"] == pytest.approx(24 / 100 / math.log(2))
    assert row["best_member_loss"] == pytest.approx(8.0) and row["gain_vs_best_member"] == pytest.approx(0.25)
    assert table.loc["a + b", "group"] == "same_family" and table.loc["a + b", "loss"] == pytest.approx((10 + 12 + 4 + 5) / 4)
    assert table.loc["a + b + c", "loss"] == pytest.approx((6 + 8 + 4 + 5) / 4)
    # frontier over all subsets: a (100, 8.0), a+c (250, 6.0), a+b+c (450, 5.75); b, c, a+b, b+c dominated
    assert set(table.index[table["on_frontier"]]) == {"a", "a + c", "a + b + c"}


def test_frontier_flags_agree_with_the_exact_subset_frontier():
    rng = np.random.default_rng(3)
    M = rng.gamma(5.0, 20.0, size=(4, 60))
    params = [135, 268, 494, 1543]
    table = realpool.subset_table(M, np.full(60, 300), params, list("wxyz"), ["s", "g", "q", "q"])
    exact = subset_frontier(M, np.asarray(params), method="brute")
    flagged = table[table["on_frontier"]].sort_values("params")
    assert [tuple(s) for s in flagged["subset"]] == [tuple(s) for s in exact["subset"]]
    np.testing.assert_array_equal(flagged["loss"].to_numpy(), exact["loss"].to_numpy())  # bit for bit


def test_domain_tables_hand_computed():
    per = realpool.domain_table(L, BYTES, DOMAINS, NAMES).set_index(["domain", "model"])
    assert per.loc[("code", "c"), "win_share"] == 1.0 and per.loc[("code", "a"), "win_share"] == 0.0
    # prose: text 2 won by a, text 3 by b -> 0.5 each
    assert per.loc[("prose", "a"), "win_share"] == 0.5 == per.loc[("prose", "b"), "win_share"]
    assert per.loc[("prose", "c"), "bits_per_byte"] == pytest.approx(18 / 70 / math.log(2))
    summary = realpool.domain_summary(L, BYTES, DOMAINS, NAMES, {"code": "likely: python_stdlib"}).set_index("domain")
    assert summary.loc["code", "best_single"] == "c" and summary.loc["code", "top_winner"] == "c"
    assert summary.loc["code", "oracle_gain"] == pytest.approx(0.0)
    # prose: best single a (5.0); oracle min(4,5,9), min(6,5,9) -> 4.5; gain 1 - 4.5 / 5
    assert summary.loc["prose", "oracle_gain"] == pytest.approx(0.1)
    assert summary.loc["code", "pretraining_exposure"] == "likely: python_stdlib"
    assert summary.loc["prose", "pretraining_exposure"] == ""
    with pytest.raises(ValueError, match="one label per text"):
        realpool.domain_table(L, BYTES, DOMAINS[:3], NAMES)


def test_domain_exposure_takes_the_most_severe_flag():
    domains = ["fiction", "fiction", "fiction", "news", "email"]
    sources = ["brown:cp01", "shakespeare:hamlet", "moby_dick:ch1", "brown:a01", "mine:x"]
    assert realpool.domain_exposure(domains, sources) == {
        "fiction": "likely: moby_dick, shakespeare", "news": "possible: brown", "email": ""
    }


def test_family_pairs_compare_at_equal_budget():
    table = realpool.subset_table(L, BYTES, PARAMS, NAMES, FAMILIES)
    pairs = realpool.family_pairs(table)
    assert len(pairs) == 1
    row = pairs.iloc[0]
    # same-family a + b: 300 params, loss 7.75; cross pairs within 300: a + c (250, 6.0); b + c (350) is over budget
    assert row["same_family_pair"] == "a + b" and row["params"] == 300 and row["n_cross_within_budget"] == 1
    assert row["cross_pair"] == "a + c" and row["cross_minus_same"] == pytest.approx(6.0 - 7.75)


def test_mixture_table_bounds_and_units():
    rng = np.random.default_rng(0)
    M = rng.gamma(4.0, 25.0, size=(3, 40))
    n_bytes = rng.integers(200, 400, size=40)
    table = realpool.mixture_table(M, n_bytes, [1, 2, 3], ["a", "b", "c"])
    assert len(table) == 4  # subsets of 2+ of 3 models
    # oracle <= fitted mixture <= uniform mixture's bound: oracle + log(k) per text
    assert (table["oracle"] <= table["mix_fitted"] + 1e-12).all()
    assert (table["mix_uniform"] <= table["oracle"] + np.log(table["size"]) + 1e-9).all()
    ratio = table["oracle_bpb"] / table["oracle"]
    assert np.allclose(ratio, ratio.iloc[0]) and (table["mix_minus_oracle"] >= -1e-12).all()


def test_reading_sentences_follow_the_tables():
    """The report's reading is built from the numbers: a clear best model, a domain it loses, the largest gain."""
    from mmlaw_utils.report.realpool import compute_results, reading_markdown

    M = np.array([
        [10.0, 12.0, 4.0, 6.0],   # a (family f): best alone, 8.0; wins both prose texts
        [11.0, 13.0, 5.0, 7.0],   # b (family f): 9.0
        [6.0, 8.0, 9.0, 10.0],    # c (family g): 8.25; wins both code texts
    ])
    models = pd.DataFrame({"model": NAMES, "family": FAMILIES, "params": PARAMS})
    results = compute_results(M, BYTES, models, DOMAINS, ["d1", "d2", "d3", "d4"], dataset="t.jsonl", seed=0)
    text = "\n".join(reading_markdown(results))
    assert "a is the best model alone" in text and "wins 0-100% of the texts of every domain" in text
    assert "*code* (c, 100%)" in text
    # oracle(a, c) = mean(6, 8, 4, 6) = 6.0 against a's 8.0: +25.0%
    assert "+25.0% (a + c)" in text
    # same-family a + b (P 300, 8.0 nats) vs cross-family a + c (P 250, 6.0 nats)
    assert "has a lower oracle loss (-2.00 nats per text, 25.00% of the loss" in text
    assert "3 single models spanning 0.3 decade(s) of P give 2 points on the any-size frontier" in text  # a, a + c


def test_dominated_models_are_the_ones_a_smaller_model_beats():
    # a (P 100) 8.0, b (P 200) 8.5, c (P 150) 8.0: b loses to the smaller a; c ties it, so it is not beaten
    assert realpool.dominated_models(L, PARAMS) == [1]
    assert realpool.dominated_models(L, [200, 50, 300]) == []  # the worst model is the smallest: nobody is beaten


def test_an_awq_derived_outlier_is_flagged_and_left_out_of_the_reading():
    """The caveats name the AWQ-derived model; the Reading is the pool without it, while the tables keep it."""
    from mmlaw_utils.report.realpool import caveats_markdown, compute_results, reading_markdown, results_markdown

    M = np.array([
        [10.0, 12.0, 4.0, 6.0],   # a (P 100): best alone, 8.0
        [6.0, 8.0, 9.0, 10.0],    # c (P 150): 8.25, wins code
        [5.0, 20.0, 20.0, 20.0],  # q (P 300, AWQ-derived): 16.25, worse than both smaller models
    ])
    models = pd.DataFrame({"model": ["a", "c", "q"], "family": ["f", "g", "h"], "params": [100, 150, 300],
                           "upstream_model": ["org/A", "org/C", "org/Q-Instruct-AWQ"]})
    results = compute_results(M, BYTES, models, DOMAINS, ["d1", "d2", "d3", "d4"], dataset="t.jsonl", seed=0)
    assert results.derived == ["q"] and results.excluded == ["q"]
    caveats = "\n".join(caveats_markdown(results))
    assert "**q is an AWQ-derived GGUF**" in caveats and "`org/Q-Instruct-AWQ`" in caveats
    assert "It is an outlier here: a, c have fewer parameters" in caveats
    reading = "\n".join(reading_markdown(results))
    assert "Without q (an outlier" in reading and "about the other 2 models" in reading
    # without q, a + c is the only pair: oracle mean(6, 8, 4, 6) = 6.0 against a's 8.0
    assert "+25.0% (a + c)" in reading and not re.search(r"\bq\b", reading.split("about the other 2 models.")[1])
    assert "a + c + q" in results_markdown(results)  # the tables keep every subset
    # the same model, when no smaller model beats it, is flagged but kept
    kept = compute_results(M[[0, 2]], BYTES, models.iloc[[0, 2]].reset_index(drop=True).assign(params=[300, 100]),
                           DOMAINS, ["d1", "d2", "d3", "d4"], dataset="t.jsonl", seed=0)
    assert kept.excluded == [] and kept.conclusions is None
    assert "It is not an outlier here" in "\n".join(caveats_markdown(kept))


def test_prefix_section_shows_every_candidate_the_choice_and_the_cache_prefix():
    from mmlaw_utils.report.realpool import compute_results, prefix_markdown

    models = pd.DataFrame({"model": NAMES, "family": FAMILIES, "params": PARAMS,
                           "document_prefix": ["<|endoftext|>", "<s>", "<|endoftext|>"]})
    rows = []
    for model, nll in (("a", [1000.0, 1001.0, 1000.5]), ("b", [1300.0, 1001.0, 1000.0])):
        for candidate, token, value in zip(["BOS, separator", "newline", "none"], ["<|endoftext|>", "\n", None], nll):
            rows.append({"model": model, "candidate": candidate, "token": token, "separator": candidate.startswith("BOS"),
                         "n_texts": 24, "n_tokens": 5000, "nll_sum": value, "nats_per_token": value / 5000,
                         "nats_per_token_code": 0.1, "nats_per_token_prose": 0.3})
    results = compute_results(L, BYTES, models, DOMAINS, ["d1", "d2", "d3", "d4"], dataset="t.jsonl",
                              prefix_table=pd.DataFrame(rows))
    text = "\n".join(prefix_markdown(results))
    assert "24 training-side calibration documents" in text
    assert "| b | BOS, separator | `<\\|endoftext\\|>` | 0.2600 | 0.1000 | 0.3000 | +30.0% |  |" in text
    assert "| b | newline | `\\n` | 0.2002 | 0.1000 | 0.3000 | +0.1% | yes |" in text
    assert "- a: `<|endoftext|>`; the documented separator `<|endoftext|>` has the lowest loss of every candidate" in text
    assert "its score cache was scored after it." in text.split("- a:")[1].split("\n")[0]
    # b's cache still holds the old prefix: the report says so
    assert "**its score cache was scored after `<s>`: rescore it**" in text.split("- b:")[1]
    assert "| a | BOS, separator | `<\\|endoftext\\|>` |" in text  # pipes escaped in table cells only
    assert "- c: no prefix-sensitivity rows yet (`python -m mmlaw_utils real prefix-table c`)" in text
