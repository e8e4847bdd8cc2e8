"""The README's first screen: the verdict summary and the paper's own Table 1 are generated, never typed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mmlaw_utils.report.tables import (PAPER_TABLE1, SUMMARY_END, SUMMARY_START, paper_table1_markdown,
                                       summary_markdown, update_readme)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _claims(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"claim": ["§4.1: a", "§4.2: b", "Fig. 1: c"], "groups": ["single"] * 3,
                  "verdict": ["disagrees", "not identified", "disagrees"], "evidence": ["x", "y", "z"]}).to_csv(
        folder / "claims.csv", index=False)


def test_summary_counts_each_verdict_and_lists_its_claims(tmp_path):
    _claims(tmp_path / "data")
    text = summary_markdown("demo", tmp_path / "data", tmp_path)
    # verdicts are counted in the order of analysis.claims.VERDICTS; a verdict no claim got is not listed
    assert "): 2 disagrees, 1 not identified." in text and "0 agrees" not in text
    assert "`data/claims.csv`" in text and "profile `demo`" in text
    assert "- *disagrees*: 1. §4.1: a; 3. Fig. 1: c" in text and "- *not identified*: 2. §4.2: b" in text


def test_paper_table_is_the_papers_own_values():
    lines = paper_table1_markdown().splitlines()
    assert len(lines) == 2 + len(PAPER_TABLE1)
    assert lines[2] == "| Single model | 71 | 12 | 1765.03 | 886.15 | 0.3578 |"


def test_update_readme_writes_the_first_screen_region(tmp_path):
    data = tmp_path / "data"
    _claims(data)
    (data / "table1.md").write_text("| table |\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n{SUMMARY_START}\nold\n{SUMMARY_END}\n<!-- results:start -->\n<!-- results:end -->\n")
    update_readme(readme, "demo", data, tmp_path / "figures")
    text = readme.read_text()
    assert "\nold\n" not in text and "2 disagrees" in text and "The paper's own values" in text
    assert text.index("2 disagrees") < text.index(SUMMARY_END) < text.index("| table |")


def test_committed_readme_summary_matches_the_committed_claims():
    readme = (REPO_ROOT / "README.md").read_text()
    region = readme[readme.index(SUMMARY_START) + len(SUMMARY_START):readme.index(SUMMARY_END)]
    assert summary_markdown("minipool", REPO_ROOT / "data" / "minipool", REPO_ROOT).strip() in region


def test_routing_sentence_reads_the_arms_verdicts():
    import pandas as pd

    from mmlaw_utils.report.tables import routing_markdown

    frame = pd.DataFrame(
        [("all_pairs", "main - same_data", gain, est, lo, hi, verdict) for gain, est, lo, hi, verdict in
         (("oracle", 27.0, 23.0, 31.0, "above 0"), ("router", 25.5, 21.0, 29.5, "above 0"),
          ("within", 1.5, 0.6, 2.2, "above 0"))]
        + [("size_matched", "main - same_data", "within", 9.0, 8.0, 10.0, "above 0")],
        columns=["selection", "contrast", "gain", "estimate", "lo", "hi", "verdict"])
    text = routing_markdown(frame)
    assert "is 27.00 [23.00, 31.00] (above 0)" in text and "already gets 25.50 [21.00, 29.50]" in text
    assert "rest is 1.50 [0.60, 2.20] (above 0)" in text and "9.00" not in text and "seed(same_data)):" not in text


def test_granularity_sentence_reads_the_summary_from_coarse_to_fine():
    import pandas as pd

    from mmlaw_utils.report.tables import granularity_markdown

    frame = pd.DataFrame({"granularity": ["text", "word"], "members": [3, 3], "gain_oracle": [0.88, 89.75],
                          "gain_switching": [-0.21, 9.01], "kept_share": [float("nan"), 9.01 / 89.75]})
    text = granularity_markdown(frame)
    assert "3 models" in text and "0.88 per text and 89.75 per word" in text
    assert "keeps -0.21 nats of it per text and 10% per word" in text
