import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gankit
from gankit.config import PRESETS, Config, all_keys, apply_overrides, preset
from gankit.errors import UserError


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_round_trip_yaml(name, tmp_path):
    cfg = preset(name).validate()
    path = tmp_path / "c.yaml"
    cfg.save(path)
    assert Config.load(path) == cfg


def test_unknown_key_suggests_nearest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("loss:\n  nmae: hinge\n")
    with pytest.raises(UserError, match="did you mean 'loss.name'"):
        Config.load(path)
    with pytest.raises(UserError, match="did you mean 'train.steps'"):
        apply_overrides(Config(), ["train.stpes=3"])


def test_overrides_types():
    cfg = apply_overrides(Config(), ["loss.name=hinge", "opt_g.lr=1e-3", "train.steps=7", "d.spectral_norm=true"])
    assert (cfg.loss.name, cfg.opt_g.lr, cfg.train.steps, cfg.d.spectral_norm) == ("hinge", 1e-3, 7, True)
    with pytest.raises(UserError, match="train.steps"):
        apply_overrides(Config(), ["train.steps=many"])
    with pytest.raises(UserError, match="key=value"):
        apply_overrides(Config(), ["train.steps"])


def test_validation_ranges():
    with pytest.raises(UserError, match="train.steps"):
        apply_overrides(Config(), ["train.steps=-1"]).validate()
    with pytest.raises(UserError, match="divisible"):
        apply_overrides(Config(), ["d.pack=3"]).validate()
    with pytest.raises(UserError, match="unknown preset 'digit'.*did you mean 'digits'"):
        preset("digit")


def test_bad_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        Config.load(path)
    path.write_text("- 1\n")
    with pytest.raises(UserError, match="mapping"):
        Config.load(path)


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(all_keys()), value=st.one_of(st.integers(-5, 5), st.floats(allow_nan=False),
                                                        st.text(max_size=8), st.booleans()))
def test_overrides_never_crash(key, value):
    """Any key=value either applies with the right type or is a UserError naming the key."""
    try:
        cfg = apply_overrides(Config(), [f"{key}={value}"])
    except UserError as exc:
        assert key in str(exc) or "key=value" in str(exc)
        return
    section, name = key.split(".")
    default = getattr(getattr(Config(), section), name)
    assert isinstance(getattr(getattr(cfg, section), name), type(default))


def test_public_api():
    assert callable(gankit.train) and callable(gankit.load)
