"""Loss matrix assembly from score caches: validation naming the culprit, params source, save/load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmlaw_utils.scoring.cache import PROVENANCE_KEY, cache_path, write_cache
from mmlaw_utils.analysis.lossmatrix import (
    LossMatrix,
    loss_matrix_from_arrays,
)
from mmlaw_utils.scoring.assemble import assemble_loss_matrix, load_loss_matrix, write_loss_matrix

FP = "ab" * 32
TEXT_IDS = ["t0", "t1", "t2", "t3"]
NLL = {
    "org/m-small": [10.0, 20.0, 30.0, 40.0],
    "org/m-large": [8.0, 25.0, 20.0, 41.0],
    "other/x": [9.5, 19.0, 35.0, 30.0],
}


def provenance(model: str, **overrides) -> dict:
    base = {
        "model": model, "model_revision": "abc", "model_hash": "h", "tokenizer": model, "dtype": "float32",
        "device": "cpu", "max_length": None, "window_policy": "truncate", "prefix_policy": "bos",
        "dataset": "texts.jsonl", "dataset_fingerprint": FP, "n_texts": 4, "complete": True,
        "params_total": 1000 + len(model), "params_nonembed": 500, "package_version": "0.1.0",
        "created_utc": "2026-01-01T00:00:00Z",
    }
    base.update(overrides)
    return base


def results(model: str, text_ids=TEXT_IDS, nll=None) -> pd.DataFrame:
    values = NLL[model] if nll is None else nll
    return pd.DataFrame({"text_id": text_ids, "nll": values, "n_tokens": [3] * len(text_ids), "n_bytes": [12] * len(text_ids)})


@pytest.fixture
def pool() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": list(NLL),
            "family": ["m", "m", "x"],
            "params_nominal": [1_000_000, 2_000_000, 3_000_000],
            "revision": [None, None, None],
        }
    )


@pytest.fixture
def cache_dir(tmp_path):
    folder = tmp_path / "scores"
    for model in NLL:
        write_cache(cache_path(folder, model, FP), results(model), provenance(model))
    return folder


def test_assemble_to_array_and_models_table(cache_dir, pool):
    lm = assemble_loss_matrix(cache_dir, pool)
    np.testing.assert_array_equal(lm.to_array(), np.array(list(NLL.values())))
    assert lm.model_names == list(NLL)
    assert lm.text_ids == TEXT_IDS
    assert lm.shape == (3, 4)
    np.testing.assert_array_equal(lm.params, [1000 + len(m) for m in NLL])  # measured params_total
    assert lm.models["params_source"].tolist() == ["measured"] * 3
    assert lm.families.tolist() == ["m", "m", "x"]
    assert lm.models["dataset_fingerprint"].tolist() == [FP] * 3
    assert lm.models["params_nominal"].tolist() == [1_000_000, 2_000_000, 3_000_000]
    np.testing.assert_array_equal(lm.to_array("n_tokens"), np.full((3, 4), 3))
    assert list(lm.long.columns[:5]) == ["model", "text_id", "nll", "n_tokens", "n_bytes"]


def test_pool_order_defines_model_order(cache_dir, pool):
    lm = assemble_loss_matrix(cache_dir, pool.iloc[::-1])
    assert lm.model_names == list(NLL)[::-1]
    np.testing.assert_array_equal(lm.to_array()[0], NLL["other/x"])


def test_params_fall_back_to_nominal(tmp_path, pool):
    folder = tmp_path / "scores"
    for model in NLL:
        prov = provenance(model, params_total=None) if model == "other/x" else provenance(model)
        write_cache(cache_path(folder, model, FP), results(model), prov)
    lm = assemble_loss_matrix(folder, pool)
    assert lm.models["params_source"].tolist() == ["measured", "measured", "nominal"]
    assert lm.params[2] == 3_000_000


def test_missing_params_names_the_model(tmp_path, pool):
    folder = tmp_path / "scores"
    for model in NLL:
        write_cache(cache_path(folder, model, FP), results(model), provenance(model, params_total=None))
    with pytest.raises(ValueError, match="'org/m-large' is missing params"):
        assemble_loss_matrix(folder, pool.assign(params_nominal=[1, None, 3]))


def test_missing_family_names_the_model(cache_dir, pool):
    with pytest.raises(ValueError, match="'other/x' is missing its family"):
        assemble_loss_matrix(cache_dir, pool.assign(family=["m", "m", None]))


def test_missing_cache_names_the_model(cache_dir, pool):
    extra = pd.concat([pool, pd.DataFrame({"model": ["org/absent"], "family": ["m"], "params_nominal": [5]})])
    with pytest.raises(FileNotFoundError, match="'org/absent' of the pool has no score cache"):
        assemble_loss_matrix(cache_dir, extra)


def test_different_text_ids_name_the_model(cache_dir, pool):
    ids = ["t0", "t1", "t2", "t9"]
    write_cache(cache_path(cache_dir, "org/m-large", FP), results("org/m-large", text_ids=ids), provenance("org/m-large"))
    with pytest.raises(ValueError, match=r"text ids differ for model 'org/m-large'.*missing \['t3'\].*extra \['t9'\]"):
        assemble_loss_matrix(cache_dir, pool)


def test_reordered_text_ids_are_reported(cache_dir, pool):
    order = [1, 0, 2, 3]
    write_cache(
        cache_path(cache_dir, "other/x", FP),
        results("other/x", text_ids=[TEXT_IDS[i] for i in order], nll=[NLL["other/x"][i] for i in order]),
        provenance("other/x"),
    )
    with pytest.raises(ValueError, match="text ids differ for model 'other/x'.*different order"):
        assemble_loss_matrix(cache_dir, pool)


def test_non_finite_loss_names_model_and_file(cache_dir, pool):
    # write_cache refuses NaN, so write a damaged file directly
    path = cache_path(cache_dir, "org/m-small", FP)
    frame = results("org/m-small", nll=[10.0, np.nan, 30.0, 40.0])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({PROVENANCE_KEY: json.dumps(provenance("org/m-small")).encode()})
    pq.write_table(table, path)
    with pytest.raises(ValueError, match=r"model 'org/m-small'.*non-finite nll.*t1"):
        assemble_loss_matrix(cache_dir, pool)


def test_non_finite_loss_in_a_constructed_matrix_names_model_and_text():
    nll = np.array([[1.0, 2.0], [3.0, np.inf]])
    with pytest.raises(ValueError, match="non-finite nll inf for model 'b' text 'y'"):
        loss_matrix_from_arrays(nll, ["a", "b"], ["x", "y"], ["f", "g"], [10, 20])


def test_fingerprint_mismatch_names_the_file(cache_dir, pool):
    path = cache_path(cache_dir, "other/x", FP)
    write_cache(path, results("other/x"), provenance("other/x", dataset_fingerprint="cd" * 32))
    with pytest.raises(ValueError, match=f"fingerprint differs for file {path.name}"):
        assemble_loss_matrix(cache_dir, pool)


def test_incomplete_cache_is_refused(cache_dir, pool):
    path = cache_path(cache_dir, "org/m-small", FP)
    write_cache(path, results("org/m-small"), provenance("org/m-small", complete=False))
    with pytest.raises(ValueError, match="'org/m-small'.*incomplete"):
        assemble_loss_matrix(cache_dir, pool)


def test_two_caches_for_one_model_need_a_fingerprint(cache_dir, pool):
    other = "cd" * 32
    write_cache(cache_path(cache_dir, "other/x", other), results("other/x"), provenance("other/x", dataset_fingerprint=other))
    with pytest.raises(ValueError, match="'other/x' has 2 score caches"):
        assemble_loss_matrix(cache_dir, pool)
    lm = assemble_loss_matrix(cache_dir, pool, dataset_fingerprint=FP)
    assert lm.shape == (3, 4)


def test_save_load_round_trip_is_atomic(cache_dir, pool, tmp_path):
    lm = assemble_loss_matrix(cache_dir, pool)
    out = tmp_path / "data"
    long_path, models_path = write_loss_matrix(lm, out)
    assert sorted(p.name for p in out.iterdir()) == ["loss_matrix.parquet", "models.parquet"]  # no temp files left
    again = load_loss_matrix(out)
    pd.testing.assert_frame_equal(again.long, lm.long)
    pd.testing.assert_frame_equal(again.models, lm.models)
    np.testing.assert_array_equal(again.to_array(), lm.to_array())
    with pytest.raises(FileNotFoundError, match="notebook 02"):
        load_loss_matrix(tmp_path / "nowhere")


def test_constructor_checks_models_table():
    long = pd.DataFrame({"model": ["a"], "text_id": ["x"], "nll": [1.0], "n_tokens": [1], "n_bytes": [1]})
    with pytest.raises(ValueError, match="'a' has no family"):
        LossMatrix(long=long, models=pd.DataFrame({"model": ["a"], "family": [""], "params": [5]}))
    with pytest.raises(ValueError, match="'a' has no positive params"):
        LossMatrix(long=long, models=pd.DataFrame({"model": ["a"], "family": ["f"], "params": [0]}))
    with pytest.raises(ValueError, match=r"model\(s\) \['a'\] have losses but no row"):
        LossMatrix(long=long, models=pd.DataFrame({"model": ["b"], "family": ["f"], "params": [5]}))
