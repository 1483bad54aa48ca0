"""Conditional GANs, sampling by class, label agreement and the augmentation experiment."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import gankit
from gankit.cli import main
from gankit.config import NetConfig, apply_overrides
from gankit.nets import build_discriminator, build_generator

SHAPES = {"mlp": (2,), "dcgan": (1, 16, 16), "resnet": (3, 16, 16)}


@pytest.mark.parametrize("family", ["mlp", "dcgan", "resnet"])
@pytest.mark.parametrize("cond", ["projection", "acgan"])
def test_conditional_shapes_and_label_plumbing(family, cond):
    torch.manual_seed(0)
    shape = SHAPES[family]
    G = build_generator(NetConfig(family=family, width=8), 8, shape, num_classes=5)
    D = build_discriminator(NetConfig(family=family, width=8, norm="none", cond=cond), shape, num_classes=5)
    for m in G.modules():  # conditional batch norm starts as the identity for every class: perturb it
        if isinstance(m, torch.nn.Embedding):
            torch.nn.init.normal_(m.weight)
    G.eval()
    z = torch.randn(6, 8)
    y0, y1 = torch.zeros(6, dtype=torch.long), torch.full((6,), 3)
    x0, x1 = G(z, y0), G(z, y1)
    assert x0.shape == (6, *shape)
    assert not torch.allclose(x0, x1), "the label must change the generator's output"
    out = D(x0, y0)
    assert out.shape == (6,)
    if cond == "projection":
        assert not torch.allclose(out, D(x0, y1)), "the projection head must use the label"
    else:
        logit, cls = D(x0, y0, aux=True)
        assert logit.shape == (6,) and cls.shape == (6, 5)
        assert torch.allclose(logit, out)


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cond") / "run"
    cfg = apply_overrides(gankit.preset("digits-cond"), [
        "data.size=8", "g.width=8", "d.width=8", "train.steps=6", "data.batch_size=16", "log.every=3",
        "log.progress=false", "log.checkpoint_every=3", "log.sample_every=3"])
    gankit.train(cfg, run)
    return run


def test_class_option_changes_the_samples(cond_run, tmp_path):
    outs = {}
    for label in ("0", "7"):
        path = tmp_path / f"c{label}.npz"
        assert main(["sample", str(cond_run), "--n", "8", "--class", label, "--out", str(path)]) == 0
        with np.load(path) as f:
            outs[label] = f["samples"]
            assert (f["labels"] == int(label)).all()
    assert not np.allclose(outs["0"], outs["7"])


def test_class_all_writes_a_labelled_tree_and_rows(cond_run, tmp_path):
    assert main(["sample", str(cond_run), "--n", "20", "--class", "all", "--out", str(tmp_path / "tree")]) == 0
    folders = sorted(p.name for p in (tmp_path / "tree").iterdir())
    assert folders == [str(i) for i in range(10)]
    assert all(len(list((tmp_path / "tree" / f).glob("*.png"))) == 2 for f in folders)
    assert main(["sample", str(cond_run), "--n", "20", "--out", str(tmp_path / "g.npz")]) == 0
    with np.load(tmp_path / "g.npz") as f:
        assert np.bincount(f["labels"]).tolist() == [2] * 10
        assert list(f["classes"]) == [str(i) for i in range(10)]


def test_unknown_class_lists_valid_ones(cond_run, tmp_path, capsys):
    assert main(["sample", str(cond_run), "--class", "cat", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown class 'cat'" in err and "0, 1, 2" in err and "\n" not in err


def test_one_class_data_is_refused_for_a_conditional_model(tmp_path, capsys):
    np.savez(tmp_path / "one.npz", samples=np.random.rand(20, 8, 8), labels=np.zeros(20, dtype=int))
    assert main(["train", "--preset", "digits-cond", "--set", f"data.source={tmp_path / 'one.npz'}",
                 "--out", str(tmp_path / "run"), "--steps", "2", "--quiet"]) == 2
    assert "at least two classes" in capsys.readouterr().err


def test_labels_out_of_range_are_refused(tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", samples=np.random.rand(4, 8, 8), labels=np.array([0, 1, 2, 5]),
             classes=np.array(["a", "b", "c"]))
    assert main(["train", "--preset", "digits-cond", "--set", f"data.source={tmp_path / 'bad.npz'}",
                 "--out", str(tmp_path / "run"), "--steps", "2", "--quiet"]) == 2
    assert "labels out of range" in capsys.readouterr().err


def test_acgan_with_packing_is_refused():
    cfg = apply_overrides(gankit.preset("digits-cond"), ["d.cond=acgan", "d.pack=2"])
    with pytest.raises(gankit.errors.UserError, match="acgan"):
        cfg.validate()


def test_classifier_on_separable_data_predicts_correctly():
    from gankit.classifier import train_classifier

    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(100, 2, generator=gen) - 3, torch.randn(100, 2, generator=gen) + 3])
    y = torch.cat([torch.zeros(100), torch.ones(100)]).long()
    clf = train_classifier(x, y, epochs=10, seed=0)
    assert clf.accuracy(torch.tensor([[-3.0, -3.0], [3.0, 3.0], [-2.0, -4.0]]), np.array([0, 1, 0])) == 1.0


def test_agreement_and_augment(cond_run, tmp_path, capsys):
    from gankit.classifier import train_classifier
    from gankit.config import DataConfig
    from gankit.data import load_data

    ds = load_data(DataConfig(source="digits", size=8))
    clf = train_classifier(ds.x[:300], ds.y[:300], epochs=2, seed=0)
    clf.save(tmp_path / "clf.safetensors")
    assert main(["agreement", str(cond_run), "--classifier", str(tmp_path / "clf.safetensors"),
                 "--n-per-class", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.0 <= result["overall"] <= 1.0 and set(result["per_class"]) == {str(i) for i in range(10)}
    assert main(["augment", str(cond_run), "--n-per-class", "3", "--out", str(tmp_path / "aug")]) == 0
    assert sorted(len(list(p.iterdir())) for p in (tmp_path / "aug").iterdir()) == [3] * 10
    # the synthetic folder is itself a labelled data set
    assert load_data(DataConfig(source=str(tmp_path / "aug"), size=8)).num_classes == 10
    assert main(["augment", str(cond_run), "--n-per-class", "3", "--out", str(tmp_path / "aug")]) == 2


def test_augment_on_unconditional_run_is_refused(tiny_digits, tmp_path, capsys):
    tiny_digits.train.steps = 3
    gankit.train(tiny_digits, tmp_path / "run")
    assert main(["augment", str(tmp_path / "run"), "--n-per-class", "3", "--out", str(tmp_path / "a")]) == 2
    assert "conditional" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


@pytest.mark.slow
def test_augment_report_runs_end_to_end(tmp_path, capsys):
    assert main(["augment-report", "--labeled-per-class", "2,3", "--seeds", "2", "--size", "8",
                 "--gan-steps", "4", "--synth-per-class", "3", "--classifier-steps", "3",
                 "--set", "g.width=8", "--set", "d.width=8", "--set", "data.batch_size=8",
                 "--plot", str(tmp_path / "aug.png"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["labeled_per_class"] for r in report["results"]] == [2, 3]
    for r in report["results"]:
        for arm in ("real", "real_classic", "real_synth", "real_classic_synth", "synth"):
            assert set(r[arm]) >= {"mean", "std"} and 0.0 <= r[arm]["mean"] <= 1.0
    assert (tmp_path / "aug.png").stat().st_size > 1000


@pytest.mark.parametrize("family", ["mlp", "dcgan"])
def test_at_init_z_moves_the_output_more_than_the_label(family):
    # A label embedding as loud as z lets G take all its variety from the label: every sample of a class
    # then comes out the same (intra-class collapse). At initialisation z must dominate.
    torch.manual_seed(0)
    shape = SHAPES[family]
    G = build_generator(NetConfig(family=family, width=16), 64, shape, num_classes=10).eval()
    z = torch.randn(200, 64)
    y = torch.randint(0, 10, (200,))
    with torch.no_grad():
        over_z = (G(z, y[:1].expand(200)) - G(z, y[:1].expand(200)).mean(0)).pow(2).mean()
        over_y = (G(z[:1].expand(200, 64), y) - G(z[:1].expand(200, 64), y).mean(0)).pow(2).mean()
    assert over_z > 3 * over_y


class _FakeGenerator:
    classes = ("a", "b")

    def __init__(self, sampler):
        self.sampler = sampler

    def balanced_labels(self, n):
        return torch.arange(n) % 2

    def sample(self, n, seed=None, labels=None):
        return self.sampler(labels)


def test_intra_class_spread_sees_collapse():
    from gankit.tasks.augment import intra_class_spread

    rng = np.random.default_rng(0)
    y_real = np.arange(400) % 2
    x_real = rng.normal(size=(400, 5)) + 3 * y_real[:, None]
    collapsed = _FakeGenerator(lambda labels: 3.0 * labels[:, None].float().expand(len(labels), 5))
    varied = _FakeGenerator(lambda labels: torch.randn(len(labels), 5) + 3.0 * labels[:, None])
    assert intra_class_spread(collapsed, x_real, y_real, n_per_class=100)["overall"] == 0.0
    assert abs(intra_class_spread(varied, x_real, y_real, n_per_class=100)["overall"] - 1.0) < 0.15
