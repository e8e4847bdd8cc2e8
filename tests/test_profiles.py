"""Every shipped profile loads, and a profile's own stage list names notebooks that exist."""

from __future__ import annotations

import pytest

from mmlaw_utils.config import PROFILES_DIR, REPO_ROOT, available_profiles, load_profile


@pytest.mark.parametrize("name", available_profiles())
def test_profile_loads_and_its_stages_exist(name):
    profile = load_profile(name)
    assert profile.data_dir.is_relative_to(REPO_ROOT)
    for stage in profile.stages or ():
        if stage != "scores":
            assert (REPO_ROOT / "notebooks" / f"{stage}.ipynb").is_file(), f"profile {name}: no notebook for {stage}"


def test_unknown_profile_key_is_a_clear_error(tmp_path, monkeypatch):
    import mmlaw_utils.config as config

    (tmp_path / "bad.yaml").write_text("dataset: x.jsonl\ndata_dir: data/bad\nstagez: [scores]\n")
    monkeypatch.setattr(config, "PROFILES_DIR", tmp_path)
    with pytest.raises(ValueError, match="stagez"):
        config.load_profile("bad")


def test_real_runs_the_real_pool_notebook_instead_of_fits():
    assert PROFILES_DIR.is_dir()
    stages = load_profile("real").stages
    assert stages[0] == "scores" and "08_real_pool" in stages and "05_fit_scaling_laws" not in stages
