"""Markdown of notebook 07 (mmlaw_utils.report.beyond_pairs)."""

from __future__ import annotations

import pandas as pd

from mmlaw_utils.report.beyond_pairs import markdown_table


def test_markdown_table_formats_numbers():
    frame = pd.DataFrame({"a": ["x", "y"], "b": [1.23456789, float("nan")], "c": [3, 4], "d": [True, False]})
    text = markdown_table(frame, digits=3)
    assert text.splitlines() == ["| a | b | c | d |", "|---|---|---|---|", "| x | 1.23 | 3 | yes |", "| y | – | 4 | no |"]


def test_committed_frontier_files_hold_no_wall_clock_time():
    import pandas as pd

    from mmlaw_utils.report.beyond_pairs import without_times

    frame = pd.DataFrame({"subset": [(0,), (0, 1)], "loss": [2.0, 1.5], "solve_s": [0.01, 0.3], "n_solves": [1, 2]})
    frame.attrs = {"complete": True, "search_s": 0.25, "n_nodes": 7}
    timeless = without_times(frame)
    assert list(timeless.columns) == ["subset", "loss", "n_solves"] and timeless.attrs == {"complete": True, "n_nodes": 7}
    assert frame.attrs["search_s"] == 0.25 and "solve_s" in frame.columns  # the caller's frame is left as it was
