"""gankit eval: sample sets, streamed and cached features, the API, the CLI and its bad-input errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.errors import UserError
from gankit.eval import evaluate, format_table, open_set, split_indices
from gankit.metrics.cas import classification_accuracy_score, label_agreement
from gankit.metrics.fid import fid
from gankit.metrics.prdc import prdc


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def images(n, size=8, channels=1, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(shift, 0.4, size=(n, channels, size, size)), -1, 1).astype(np.float32)


def write_npz(path, key="samples", **arrays):
    np.savez(path, **{key if k == "x" else k: v for k, v in arrays.items()})
    return str(path)


# ---- sample sets ----


def test_builtin_splits_are_fixed_disjoint_and_complete():
    train, test = split_indices(1797, "train"), split_indices(1797, "test")
    assert len(test) == 359 and len(train) == 1438
    assert not set(train) & set(test) and set(train) | set(test) == set(range(1797))
    np.testing.assert_array_equal(test, split_indices(1797, "test"))
    a, b = open_set("digits:train"), open_set("digits:test", size=8)
    assert (a.n, a.shape, b.n, b.shape) == (1438, (1, 16, 16), 359, (1, 8, 8))
    assert a.labelled and a.classes == [str(i) for i in range(10)] and a.fingerprint != b.fingerprint
    with pytest.raises(UserError, match="unknown split 'val'"):
        open_set("digits:val")


def test_npz_images_are_read_in_batches_and_scaled_to_unit_range(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, size=(10, 6, 6, 3), dtype=np.uint8)  # N, H, W, C
    s = open_set(write_npz(tmp_path / "a.npz", key="images", x=x, labels=np.arange(10) % 2))
    assert s.shape == (3, 6, 6) and s.n == 10 and s.labelled and s.classes == ["0", "1"]
    batches = list(s.batches(4))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    got = torch.cat([b[0] for b in batches])
    np.testing.assert_allclose(got.numpy(), x.transpose(0, 3, 1, 2) / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(torch.cat([b[1] for b in batches]).numpy(), np.arange(10) % 2)


def test_vectors_stay_in_data_units(tmp_path):
    x = np.random.default_rng(0).normal(5.0, 3.0, size=(20, 2))
    s = open_set(write_npz(tmp_path / "v.npz", x=x))
    assert s.kind == "vector" and s.shape == (2,)
    np.testing.assert_allclose(s.collect()[0].numpy(), x, rtol=1e-6)
    ring = open_set("ring8")
    assert ring.mixture == "ring8" and abs(float(ring.collect()[0].norm(dim=1).mean()) - 2.0) < 0.05


def test_image_folders_stream_with_class_labels(tmp_path):
    for c in ("cat", "dog"):
        (tmp_path / "f" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((10, 12), 40 * i, np.uint8)).save(tmp_path / "f" / c / f"{i}.png")
    s = open_set(tmp_path / "f", size=8)
    assert s.shape == (1, 8, 8) and s.n == 6 and s.classes == ["cat", "dog"]
    x, y = s.collect()
    assert y.tolist() == [0, 0, 0, 1, 1, 1] and x.min() >= -1 and x.max() <= 1
    assert open_set(tmp_path / "f").shape == (1, 10, 10)  # default size: the first image's short side


# ---- the API ----


def test_raw_metrics_agree_with_the_metric_functions(tmp_path):
    a, b = images(200, seed=0), images(150, seed=1, shift=0.2)
    out = evaluate(real=write_npz(tmp_path / "a.npz", x=a), fake=write_npz(tmp_path / "b.npz", x=b),
                   features="raw", progress=False, batch_size=64)
    fa, fb = a.reshape(200, -1), b.reshape(150, -1)
    assert out["fid"] == pytest.approx(fid(fa, fb), rel=1e-6)
    assert out["precision"] == pytest.approx(prdc(fa, fb)["precision"])
    assert (out["n_real"], out["n_fake"], out["features"]) == (200, 150, "raw")
    assert {"kid_mean", "kid_std", "recall", "density", "coverage"} <= set(out)
    table = format_table(out)
    assert "fid" in table and "lower" in table and "n_real 200, n_fake 150" in table


def test_reference_features_are_cached_by_data_and_extractor(tmp_path, home, monkeypatch):
    real = write_npz(tmp_path / "a.npz", x=images(60, seed=0))
    fake = write_npz(tmp_path / "b.npz", x=images(60, seed=1))
    first = evaluate(real=real, fake=fake, features="raw", metrics="fid", progress=False)
    assert not first["ref_cached"] and len(list((home / "cache").glob("ref-*.npz"))) == 1
    import gankit.eval as ev

    calls = []
    original = ev.stream_features
    monkeypatch.setattr(ev, "stream_features", lambda s, *a, **k: calls.append(s.name) or original(s, *a, **k))
    second = evaluate(real=real, fake=fake, features="raw", metrics="fid", progress=False)
    assert second["ref_cached"] and second["fid"] == first["fid"]
    assert calls == [fake]  # only the fake set was read again
    write_npz(tmp_path / "a.npz", x=images(60, seed=2))  # new content, same name: a new key
    assert not evaluate(real=real, fake=fake, features="raw", metrics="fid", progress=False)["ref_cached"]
    assert not evaluate(real=real, fake=fake, features="raw", metrics="fid", progress=False, cache=False)["ref_cached"]


def test_classifier_features_and_the_reference_classifier_cache(tmp_path, home, monkeypatch):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (60, 2)), rng.normal(2, 1, (60, 2))])
    y = np.repeat([0, 1], 60)
    real = write_npz(tmp_path / "r.npz", x=x, labels=y)
    perm = rng.permutation(120)  # IS splits are contiguous: mix the classes within each split
    fake = write_npz(tmp_path / "f.npz", x=x[perm], labels=y[perm])
    out = evaluate(real=real, fake=fake, metrics="fid,is,agreement", progress=False)  # auto: labelled -> classifier
    assert out["features"] == "classifier" and out["agreement"] > 0.9 and 1.5 < out["is_mean"] <= 2.0
    assert len(list((home / "cache" / "classifiers").glob("clf-*.safetensors"))) == 1
    import gankit.classifier

    monkeypatch.setattr(gankit.classifier, "train_classifier", lambda *a, **k: pytest.fail("retrained"))
    again = evaluate(real=real, fake=fake, metrics="fid,is,agreement", progress=False)
    assert again["fid"] == pytest.approx(out["fid"]) and again["ref_cached"]


def test_label_agreement_and_cas_known_answers():
    logits = np.eye(3)[[0, 1, 2, 0, 1, 1]]
    out = label_agreement(logits, np.array([0, 1, 2, 0, 1, 2]))
    assert out["agreement"] == pytest.approx(5 / 6) and out["agreement_2"] == 0.5 and out["agreement_0"] == 1.0
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-3, 1, (100, 2)), rng.normal(3, 1, (100, 2))])
    y = np.repeat([0, 1], 100)
    assert classification_accuracy_score(x, y, x[::-1].copy(), y[::-1].copy(), epochs=5) > 0.95
    assert classification_accuracy_score(x, 1 - y, x, y, epochs=5) < 0.05  # swapped labels: all wrong


def test_modes_metric_on_the_toy_mixture(tmp_path):
    from gankit.data.builtin import sample_mixture

    fake = write_npz(tmp_path / "f.npz", x=sample_mixture("ring8", 400, seed=3))
    out = evaluate(real="ring8", fake=fake, metrics="modes,fid", features="raw", progress=False)
    assert out["modes"] == 8 and out["hq"] > 0.95 and out["reverse_kl"] < 0.05
    assert out["fid"] < 0.01


# ---- bad input: one-line UserErrors ----


@pytest.mark.parametrize(("a", "b", "message"), [
    (images(20, size=8), images(20, size=16), r"differ in shapes"),
    (images(20, channels=1), images(20, channels=3), r"differ in channels \(1 vs 3\)"),
])
def test_mismatched_sets_are_refused(tmp_path, a, b, message):
    with pytest.raises(UserError, match=message) as err:
        evaluate(real=write_npz(tmp_path / "a.npz", x=a), fake=write_npz(tmp_path / "b.npz", x=b), progress=False)
    assert "\n" not in str(err.value)


def test_too_few_samples_for_knn_metrics(tmp_path):
    with pytest.raises(UserError, match="k=3 need at least 4 samples"):
        evaluate(real=write_npz(tmp_path / "a.npz", x=images(50)), fake=write_npz(tmp_path / "b.npz", x=images(3)),
                 metrics="pr", features="raw", progress=False)


def test_unknown_metric_and_missing_labels(tmp_path):
    a = write_npz(tmp_path / "a.npz", x=images(20))
    with pytest.raises(UserError, match="unknown metric 'fud'"):
        evaluate(real=a, fake=a, metrics="fid,fud")
    with pytest.raises(UserError, match="no class labels"):
        evaluate(real=a, fake=a, features="classifier", progress=False)
    with pytest.raises(UserError, match="modes metric needs a built-in toy mixture"):
        evaluate(real=a, fake=a, metrics="modes", features="raw", progress=False)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_keys_and_table(tmp_path, capsys):
    a = write_npz(tmp_path / "a.npz", x=images(40, seed=0))
    b = write_npz(tmp_path / "b.npz", x=images(30, seed=1))
    code, out, _ = run_cli(capsys, "eval", "--real", a, "--fake", b, "--features", "raw", "--json", "--quiet")
    result = json.loads(out)
    assert code == 0 and {"fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage",
                          "n_real", "n_fake", "features"} <= set(result)
    code, out, _ = run_cli(capsys, "eval", "--real", a, "--fake", b, "--features", "raw", "--metrics", "fid")
    assert code == 0 and out.splitlines()[0].split() == ["metric", "value", "better"]


@pytest.mark.parametrize("case", ["empty_folder", "bad_weights", "shapes", "too_few", "no_fake", "missing"])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    a = write_npz(tmp_path / "a.npz", x=images(20))
    (tmp_path / "empty").mkdir()
    (tmp_path / "w.pth").write_bytes(b"not inception")
    argv = {
        "empty_folder": ["--real", str(tmp_path / "empty"), "--fake", a],
        "bad_weights": ["--real", a, "--fake", a, "--features", "inception", "--weights", str(tmp_path / "w.pth")],
        "shapes": ["--real", a, "--fake", write_npz(tmp_path / "b.npz", x=images(20, size=4))],
        "too_few": ["--real", a, "--fake", write_npz(tmp_path / "c.npz", x=images(2)), "--features", "raw"],
        "no_fake": ["--real", a],
        "missing": ["--real", a, "--fake", str(tmp_path / "nope.npz")],
    }[case]
    code, out, err = run_cli(capsys, "eval", *argv, "--quiet")
    expected = {"empty_folder": "no images found", "bad_weights": "SHA-256", "shapes": "differ in shapes",
                "too_few": "need at least", "no_fake": "both --real and --fake", "missing": "data not found"}
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("gankit eval: error:") and expected[case] in err


# ---- a run folder ----


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    import gankit
    from gankit.tasks.gan import train

    cfg = gankit.preset("ring8")
    cfg.train.steps, cfg.g.width, cfg.d.width, cfg.data.batch_size = 40, 32, 32, 64
    cfg.log.every, cfg.log.sample_every, cfg.log.checkpoint_every, cfg.log.progress = 10, 40, 20, False
    cfg.health.enabled = False
    cfg.eval.every, cfg.eval.metrics, cfg.eval.n, cfg.eval.best = 20, "fid,modes", 400, "fid"
    out = tmp_path_factory.mktemp("runs") / "toy"
    with pytest.warns(UserWarning, match="no class labels"):  # unlabelled toy data: raw features
        train(cfg, out)
    return out


@pytest.mark.slow
def test_eval_during_training_writes_metrics_and_keeps_the_best(toy_run):
    from gankit.checkpoint import read_manifest

    records = [json.loads(line) for line in (toy_run / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r["step"] for r in records if "fid" in r]
    assert evaluated == [20, 40] and all("modes" in r and "eval_seconds" in r for r in records if "fid" in r)
    best = json.loads((toy_run / "best.json").read_text())
    fids = {r["step"]: r["fid"] for r in records if "fid" in r}
    assert best["metric"] == "fid" and best["value"] == min(fids.values()) and fids[best["step"]] == best["value"]
    assert best["step"] in [e["step"] for e in read_manifest(toy_run / "checkpoints")]


@pytest.mark.slow
def test_eval_of_a_run_folder_samples_its_generator(toy_run, capsys):
    out = evaluate(toy_run, n=300, metrics="fid,modes", progress=False)  # reference: the run's own data
    assert out["step"] == 40 and out["n_fake"] == 300 and out["n_real"] == 50_000 and out["features"] == "raw"
    second = evaluate(toy_run, n=300, metrics="fid,modes", progress=False)
    assert second["ref_cached"] and second["fid"] == out["fid"] and second["modes"] == out["modes"]
    code, text, _ = run_cli(capsys, "eval", str(toy_run), "--ref", "ring8", "--n", "300", "--metrics", "fid",
                            "--json", "--quiet")
    assert code == 0 and json.loads(text)["fid"] == pytest.approx(out["fid"])


def test_eval_hook_is_off_by_default_and_checks_best():
    import gankit
    from gankit.data.builtin import BUILTINS
    from gankit.eval import make_eval_hook

    cfg = gankit.preset("ring8")
    ds = BUILTINS["ring8"](cfg.data)
    assert make_eval_hook(cfg, ds, "cpu") is None
    cfg.eval.every, cfg.eval.features, cfg.eval.metrics, cfg.eval.best = 10, "raw", "fid", "precision"
    with pytest.raises(UserError, match="eval.best=precision is not among"):
        make_eval_hook(cfg, ds, "cpu")
    cfg.eval.metrics, cfg.eval.n, cfg.eval.best = "fid,dc", 5, "fid"
    with pytest.raises(UserError, match="needs at least 6 samples; eval.n is 5"):
        make_eval_hook(cfg, ds, "cpu")


def test_unreadable_files_in_a_folder_are_user_errors(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read image"):
        open_set(tmp_path / "bad")
    (tmp_path / "loop").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "loop" / "ok.png")
    (tmp_path / "loop" / "x.png").symlink_to(tmp_path / "loop" / "missing.png")  # dangling link
    with pytest.raises(UserError, match="cannot read"):
        open_set(tmp_path / "loop", size=4)
