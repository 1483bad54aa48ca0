"""The small classifier: accuracy on digits, safe save/load, and its use as a feature extractor."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from sklearn.datasets import load_digits
from torch.nn import functional as F

from gankit.classifier import Classifier, train_classifier
from gankit.errors import UserError
from gankit.metrics.features import batched, extract_features, get_extractor


@pytest.fixture(scope="module")
def digits32():
    """sklearn's 8x8 digits upsampled to 32x32 in [-1, 1], split 1400 / 397."""
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 8 - 1
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1400], order[1400:]
    return x[train], d.target[train], x[test], d.target[test]


@pytest.fixture(scope="module")
def digits_classifier(digits32):
    x, y, _, _ = digits32
    return train_classifier(x, y, epochs=5, lr=1e-2, seed=0)


def test_cnn_reaches_95_percent_on_held_out_digits(digits_classifier, digits32):
    _, _, x_test, y_test = digits32
    assert digits_classifier.accuracy(x_test, y_test) >= 0.95


def test_outputs_have_the_documented_shapes(digits_classifier, digits32):
    x = digits32[2][:7]
    probs = digits_classifier.predict_proba(x)
    assert probs.shape == (7, 10)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert digits_classifier.features(x).shape == (7, 128)
    np.testing.assert_array_equal(digits_classifier.predict(x), probs.argmax(1))


def test_save_and_load_round_trip_without_pickle(digits_classifier, digits32, tmp_path):
    path = tmp_path / "clf.safetensors"
    digits_classifier.save(path)
    with safe_open(str(path), framework="pt") as f:
        spec = json.loads(f.metadata()["gankit.classifier"])
    assert spec["kind"] == "cnn" and spec["input_shape"] == [1, 32, 32] and spec["n_classes"] == 10
    loaded = Classifier.load(path)
    x = digits32[2][:20]
    np.testing.assert_allclose(loaded.logits(x), digits_classifier.logits(x), rtol=1e-5, atol=1e-5)


def test_classifier_features_stream_through_extract_features(digits_classifier, digits32, tmp_path):
    path = tmp_path / "clf.safetensors"
    digits_classifier.save(path)
    extractor = get_extractor("classifier", classifier=path)
    feats, logits = extract_features(batched(digits32[2][:50], 16), extractor, progress=False)
    assert feats.shape == (50, 128) and logits.shape == (50, 10)
    np.testing.assert_allclose(feats, digits_classifier.features(digits32[2][:50]), rtol=1e-5, atol=1e-5)


def test_mlp_for_vectors_standardises_inputs(tmp_path):
    rng = np.random.default_rng(0)
    # Two blobs on very different scales: standardisation is what makes this easy.
    x = np.concatenate([rng.normal([0, 0], [100, 1], (200, 2)), rng.normal([0, 3], [100, 1], (200, 2))])
    y = np.repeat([0, 1], 200)
    clf = train_classifier(x, y, epochs=10, seed=0)
    assert clf.spec.kind == "mlp" and clf.accuracy(x, y) > 0.9
    clf.save(tmp_path / "mlp.safetensors")
    np.testing.assert_allclose(
        Classifier.load(tmp_path / "mlp.safetensors").predict_proba(x),
        clf.predict_proba(x),
        rtol=1e-5,
        atol=1e-6,
    )


def test_bad_inputs_are_user_errors(digits_classifier, tmp_path):
    with pytest.raises(UserError, match="images .* or vectors"):
        train_classifier(np.zeros((10, 2, 2)), np.zeros(10, int), epochs=1)
    with pytest.raises(UserError, match="matching samples and labels"):
        train_classifier(np.zeros((10, 2)), np.zeros(9, int), epochs=1)
    with pytest.raises(UserError, match=r"expects samples of shape \[1, 32, 32\]"):
        digits_classifier.predict(np.zeros((2, 3, 32, 32)))
    with pytest.raises(UserError, match="not found"):
        Classifier.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(UserError, match="not a gankit classifier"):
        Classifier.load(tmp_path / "junk.safetensors")


# ---- gankit classifier train / predict / eval ----


@pytest.fixture(scope="module")
def blob_npz(tmp_path_factory):
    """Two separable classes of 8x8 images (bright left half vs bright right half) with names."""
    rng = np.random.default_rng(0)
    x = np.full((80, 8, 8), -1.0, np.float32)
    x[:40, :, :4] = 1.0
    x[40:, :, 4:] = 1.0
    x += rng.normal(0, 0.2, x.shape).astype(np.float32)
    path = tmp_path_factory.mktemp("clfdata") / "blobs.npz"
    np.savez(path, images=np.clip(x, -1, 1), labels=np.repeat([0, 1], 40), classes=np.array(["left", "right"]))
    return path


def cli(capsys, *argv):
    from gankit.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_predict_and_eval(blob_npz, tmp_path, capsys):
    from PIL import Image

    model = tmp_path / "clf.safetensors"
    code, out, _ = cli(capsys, "classifier", "train", blob_npz, "--out", model, "--epochs", "3", "--json")
    result = json.loads(out)
    assert code == 0 and model.is_file() and result["classes"] == ["left", "right"] and result["n_val"] == 8
    assert Classifier.load(model).spec.classes == ["left", "right"]

    code, out, _ = cli(capsys, "classifier", "eval", model, blob_npz, "--json")
    result = json.loads(out)
    assert code == 0 and result["accuracy"] > 0.9 and set(result["per_class"]) == {"left", "right"}

    code, out, _ = cli(capsys, "classifier", "predict", model, blob_npz, "--json")
    preds = json.loads(out)["predictions"]
    assert len(preds) == 80 and preds[0]["class"] == "left" and preds[-1]["class"] == "right"

    img = np.zeros((16, 16), np.uint8)
    img[:, 8:] = 255  # right half bright, at another size: resized to the classifier's 8x8
    Image.fromarray(img).save(tmp_path / "one.png")
    code, out, _ = cli(capsys, "classifier", "predict", model, tmp_path / "one.png")
    assert code == 0 and "one.png" in out and "right" in out and "counts:" in out


@pytest.mark.parametrize("case", ["no_labels", "suffix", "missing_model", "classes_differ"])
def test_cli_bad_input_exits_2_with_one_line(blob_npz, tmp_path, capsys, case):
    np.savez(tmp_path / "unlabelled.npz", images=np.zeros((10, 8, 8), np.float32))
    np.savez(tmp_path / "other.npz", images=np.zeros((10, 8, 8), np.float32), labels=np.arange(10) % 2,
             classes=np.array(["up", "down"]))
    model = tmp_path / "m.safetensors"
    if case == "classes_differ":
        assert cli(capsys, "classifier", "train", blob_npz, "--out", model, "--epochs", "1", "--val", "0")[0] == 0
    argv = {
        "no_labels": ["train", tmp_path / "unlabelled.npz", "--out", model],
        "suffix": ["train", blob_npz, "--out", tmp_path / "m.pt"],
        "missing_model": ["eval", tmp_path / "nope.safetensors", blob_npz],
        "classes_differ": ["eval", model, tmp_path / "other.npz"],
    }[case]
    code, out, err = cli(capsys, "classifier", *argv)
    assert out == ""
    expected = {"no_labels": "no labels", "suffix": ".safetensors", "missing_model": "not found",
                "classes_differ": "are not the classifier's"}[case]
    assert code == 2 and err.count("\n") == 1 and expected in err
