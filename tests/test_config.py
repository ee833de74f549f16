import pytest

from livestyle.config import load_params, style_config
from livestyle.errors import LivestyleError

BASE = {
    "network": {"res_blocks": 3, "width": 32},
    "loss": {"style_weight": 1.0},
    "train": {"steps": 10},
    "styles": {
        "a": {"image": "a.png"},
        "b": {"image": "b.png", "network": {"res_blocks": 2}, "loss": {"style_weight": 5.0}},
    },
}


def test_style_overrides_apply_to_that_style_only():
    a, b = style_config(BASE, "a"), style_config(BASE, "b")
    assert (a.network.res_blocks, a.loss.style_weight) == (3, 1.0)
    assert (b.network.res_blocks, b.loss.style_weight) == (2, 5.0)
    assert b.network.width == 32 and b.train.steps == 10


def test_unknown_keys_are_errors_not_ignored():
    params = {**BASE, "train": {"stepz": 3}}
    with pytest.raises(LivestyleError, match="stepz"):
        style_config(params, "a")
    params = {**BASE, "styles": {"a": {"image": "a.png", "colour": 1}}}
    with pytest.raises(LivestyleError, match="colour"):
        style_config(params, "a")


def test_missing_style_lists_the_known_ones():
    with pytest.raises(LivestyleError, match="have a, b"):
        style_config(BASE, "zz")


def test_bad_params_file_is_one_clear_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("styles: [unclosed\n")
    with pytest.raises(LivestyleError, match="params.yaml: not valid YAML"):
        load_params(bad)
    with pytest.raises(LivestyleError, match="no such params file"):
        load_params(tmp_path / "missing.yaml")


def test_project_params_build_every_style():
    params = load_params("params.yaml")
    for name in params["styles"]:
        cfg = style_config(params, name)
        assert cfg.network.res_blocks == 3 and cfg.network.norm == "batch"


def test_profile_switch_merges_its_sections(tmp_path):
    import yaml

    params = yaml.safe_load(open("params.yaml"))
    gpu = load_params(profile="gpu")
    cpu = load_params()
    assert cpu["profile"] == params["profile"] == "cpu" and cpu["train"] == params["train"]
    for section, over in params["profiles"]["gpu"].items():
        for key, value in over.items():
            assert gpu[section][key] == value
    # keys the profile does not name keep the default
    assert gpu["train"]["seed"] == cpu["train"]["seed"] and gpu["loss"]["network"] == cpu["loss"]["network"]
    assert {k for k in gpu["loss"] if gpu["loss"][k] != cpu["loss"][k]} <= set(params["profiles"]["gpu"].get("loss", {}))
    params["profile"] = "tpu"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(LivestyleError, match="profile 'tpu'"):
        load_params(path)


def test_dotted_overrides_set_any_key_and_leave_the_rest():
    from livestyle.config import with_overrides

    params = {"network": {"width": 32, "norm": "batch"}, "train": {"steps": 200}}
    out = with_overrides(params, ["network.width=16", "loss.style_scale=0.75", "prepared_dir=/tmp/p"])
    assert out["network"] == {"width": 16, "norm": "batch"} and out["loss"] == {"style_scale": 0.75}
    assert out["prepared_dir"] == "/tmp/p" and out["train"] == {"steps": 200}
    assert params["network"]["width"] == 32  # the caller's params are not changed
    with pytest.raises(LivestyleError, match="KEY=VALUE"):
        with_overrides(params, ["network.width"])
