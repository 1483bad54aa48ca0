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
    with pytest.raises(UserError, match="train.precision"):
        apply_overrides(Config(), ["train.precision=fp8"]).validate()
    with pytest.raises(UserError, match="train.lr_decay_start"):
        apply_overrides(Config(), ["train.lr_decay_start=2"]).validate()


def test_new_train_switches_fail_from_the_cli_with_one_line(tmp_path, capsys):
    from gankit.cli import main

    for bad in ("train.precision=fp8", "train.lr_decay_start=2"):
        assert main(["train", "--preset", "ring8", "--out", str(tmp_path / "r"), "--set", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and bad.split("=")[0] in err
        assert not (tmp_path / "r").exists()


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


def test_infogan_settings_are_checked():
    import gankit

    for overrides, match in (
        (["g.codes=-2"], "g.codes must be >= 0"),
        (["g.codes=8", "g.family=dcgan"], "g.codes needs g.family=mlp"),
        (["train.z_dim=2"], "g.codes needs g.family=mlp and train.z_dim >= 3"),
        (["g.codes=0"], "loss.info .InfoGAN. needs g.codes > 0"),
        (["d.pack=2"], "d.pack=1"),
        (["loss.info=-1"], "loss.info must be >= 0"),
        (["d.codes=8"], "set g.codes"),
        (["loss.info=0"], "g.codes needs loss.info > 0"),
    ):
        with pytest.raises(UserError, match=match):
            apply_overrides(gankit.preset("ring8"), overrides).validate()
