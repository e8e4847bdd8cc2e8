"""Markdown of notebook 07 (mmlaw_utils.report.beyond_pairs)."""

from __future__ import annotations

import pandas as pd

from mmlaw_utils.report.beyond_pairs import markdown_table


def test_markdown_table_formats_numbers():
    frame = pd.DataFrame({"a": ["x", "y"], "b": [1.23456789, float("nan")], "c": [3, 4], "d": [True, False]})
    text = markdown_table(frame, digits=3)
    assert text.splitlines() == ["| a | b | c | d |", "|---|---|---|---|", "| x | 1.23 | 3 | yes |", "| y | – | 4 | no |"]
