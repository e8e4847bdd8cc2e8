"""Pool configs: paper71 shape and pair counts, validation errors, CLI summary."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import yaml

from mmlaw_utils import cli
from mmlaw_utils.pool import PoolError, load_pool, pair_group_counts

POOLS_DIR = Path(__file__).resolve().parent.parent / "configs" / "pools"
PAPER71 = POOLS_DIR / "paper71.yaml"


@pytest.fixture(scope="module")
def paper71():
    return load_pool(PAPER71)


def test_paper71_has_71_unique_hub_base_models(paper71):
    assert len(paper71) == 71 and paper71["model"].is_unique
    assert list(paper71.columns[:4]) == ["model", "family", "params_nominal", "revision"]
    for model in paper71["model"]:
        assert re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", model), model  # owner/name hub id
        # base checkpoints only: no instruction-tuned or chat variants (§3.1)
        assert not re.search(r"(?i)instruct|chat|-it$|-sft|-dpo|rlhf", model), model
    assert paper71["params_nominal"].dtype == "int64" and (paper71["params_nominal"] > 0).all()
    assert paper71.attrs["pool_name"] == "paper71"


def test_paper71_pair_counts_match_table1_by_brute_force(paper71):
    families = paper71["family"].tolist()
    same = cross = 0
    for i, j in itertools.combinations(range(len(families)), 2):
        if families[i] == families[j]:
            same += 1
        else:
            cross += 1
    assert (same, cross) == (506, 1979)  # the raw-point counts of the paper's Table 1
    assert pair_group_counts(paper71) == {"single": 71, "same_family": 506, "cross_family": 1979}


def test_paper71_spans_sub_billion_to_70b_plus(paper71):
    params_b = paper71["params_nominal"] / 1e9
    assert params_b.min() < 1 and params_b.max() >= 70
    assert params_b.max() / params_b.min() > 100
    # the named families of §3.1 are present, each with several sizes
    sizes = paper71.groupby("family")["params_nominal"].nunique()
    assert {"qwen", "llama", "gemma"} <= set(sizes.index) and (sizes[["qwen", "llama", "gemma"]] >= 5).all()


def test_params_nominal_is_billions_times_1e9(tmp_path):
    path = _write(tmp_path, {"name": "t", "models": [
        {"id": "a/x", "family": "a", "params_b": 0.135},
        {"id": "b/y", "family": "b", "params_b": 7, "revision": "abc123", "release": "B-1"},
    ]})
    frame = load_pool(path)
    assert frame["params_nominal"].tolist() == [135_000_000, 7_000_000_000]
    assert frame["revision"].tolist() == [None, "abc123"]
    assert frame["release"].tolist()[1] == "B-1"  # extra keys become columns


def test_pair_group_counts_hand_case():
    import pandas as pd

    frame = pd.DataFrame({"family": ["a", "a", "b", "c", "c", "c"]})
    # same: C(2,2) + C(3,2) = 1 + 3 = 4; all pairs C(6,2) = 15
    assert pair_group_counts(frame) == {"single": 6, "same_family": 4, "cross_family": 11}


@pytest.mark.parametrize("path", sorted(POOLS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_pool_file_loads(path):
    frame = load_pool(path)
    counts = pair_group_counts(frame)
    assert counts["single"] == len(frame) >= 1
    assert counts["same_family"] + counts["cross_family"] == len(frame) * (len(frame) - 1) // 2


def _write(tmp_path: Path, content, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content), encoding="utf-8")
    return path


GOOD = {"id": "org/good", "family": "f", "params_b": 1.0}


@pytest.mark.parametrize("content, match", [
    ("models: [unclosed", r"not valid YAML"),
    ("- just\n- a list\n", r"mapping with a 'models' list"),
    ({"name": "x"}, r"'models' must be a non-empty list"),
    ({"models": []}, r"'models' must be a non-empty list"),
    ({"models": [GOOD, {"id": "org/good", "family": "g", "params_b": 2}]}, r"model #2 \('org/good'\): duplicate id"),
    ({"models": [GOOD, {"id": "org/nofam", "params_b": 2}]}, r"model #2 \('org/nofam'\): 'family'"),
    ({"models": [{"id": "org/blank", "family": " ", "params_b": 2}]}, r"'org/blank'.*'family'"),
    ({"models": [{"id": "org/noparams", "family": "f"}]}, r"'org/noparams'.*missing 'params_b'"),
    ({"models": [{"id": "org/zero", "family": "f", "params_b": 0}]}, r"'org/zero'.*> 0"),
    ({"models": [{"id": "org/neg", "family": "f", "params_b": -3}]}, r"'org/neg'.*> 0"),
    ({"models": [{"id": "org/str", "family": "f", "params_b": "7B"}]}, r"'org/str'.*number of billions"),
    ({"models": [{"id": "org/bool", "family": "f", "params_b": True}]}, r"'org/bool'.*number of billions"),
    ({"models": [{"id": "org/nan", "family": "f", "params_b": float("nan")}]}, r"'org/nan'.*finite"),
    ({"models": [{"family": "f", "params_b": 1}]}, r"model #1: 'id' must be a non-empty string"),
    ({"models": [{"id": 42, "family": "f", "params_b": 1}]}, r"model #1: 'id'"),
    ({"models": ["org/model"]}, r"model #1: an entry is a mapping"),
    ({"models": [{**GOOD, "revision": 3}]}, r"'org/good'.*'revision' must be a string"),
    ({"models": [{**GOOD, "params_nominal": 5}]}, r"'org/good'.*reserved key"),
])
def test_invalid_pool_files_give_clear_errors(tmp_path, content, match):
    path = _write(tmp_path, content)
    with pytest.raises(PoolError, match=match) as error:
        load_pool(path)
    assert str(path) in str(error.value)  # the message names the file


def test_missing_file_is_named(tmp_path):
    with pytest.raises(PoolError, match=r"nope\.yaml does not exist"):
        load_pool(tmp_path / "nope.yaml")


def test_cli_summary_prints_counts(capsys, tmp_path):
    assert cli.main(["pool", str(PAPER71)]) == 0
    out = capsys.readouterr().out
    assert "pool paper71: 71 models in" in out
    assert "506 same-family + 1979 cross-family" in out
    qwen_line = next(line for line in out.splitlines() if line.split()[:1] == ["qwen"])
    assert int(qwen_line.split()[1]) == int((load_pool(PAPER71)["family"] == "qwen").sum())
    bad = _write(tmp_path, {"models": []})
    assert cli.main(["pool", str(bad)]) == 1
    assert str(bad) in capsys.readouterr().err


def test_load_pool_sees_a_rewritten_file_and_returns_independent_copies(tmp_path):
    """Parsing is cached by file content: an edit is seen at once, and a caller's changes never leak."""
    path = _write(tmp_path, {"models": [GOOD]}, name="pool.yaml")
    first = load_pool(path)
    first.loc[0, "family"] = "changed"
    first["revision"] = "mutated"
    first.attrs["pool_name"] = "mutated"
    again = load_pool(path)
    assert again["family"].tolist() == ["f"] and again["revision"].tolist() == [None]
    assert again.attrs["pool_name"] == "pool"

    _write(tmp_path, {"name": "edited", "models": [GOOD, {"id": "org/second", "family": "g", "params_b": 2}]},
           name="pool.yaml")
    edited = load_pool(path)
    assert edited["model"].tolist() == ["org/good", "org/second"]
    assert edited["params_nominal"].tolist() == [1_000_000_000, 2_000_000_000]
    assert edited.attrs["pool_name"] == "edited"


def test_load_pool_rejects_non_utf8_naming_the_file(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("models:\n  - id: caf\xe9\n".encode("latin-1"))
    with pytest.raises(PoolError, match=r"latin\.yaml: not UTF-8"):
        load_pool(path)


@pytest.mark.parametrize("name", sorted(p.name for p in POOLS_DIR.glob("*.yaml")))
def test_load_pool_matches_the_pure_python_yaml_loader(name):
    """The libyaml loader used for speed gives the same records as PyYAML's own SafeLoader."""
    from mmlaw_utils.pool import pool_records

    path = POOLS_DIR / name
    reference = pool_records(yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader), path)
    frame = load_pool(path)
    assert frame["model"].tolist() == [row["model"] for row in reference]
    assert frame["params_nominal"].tolist() == [row["params_nominal"] for row in reference]
    assert frame["family"].tolist() == [row["family"] for row in reference]
