"""Feature extractors and streaming extraction; the Inception network is checked with random weights."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from gankit.errors import UserError
from gankit.metrics import features
from gankit.metrics.features import (
    INCEPTION_FILE,
    InceptionExtractor,
    RawExtractor,
    batched,
    extract_features,
    get_extractor,
    load_inception,
)
from gankit.metrics.inception import FIDInceptionV3


@pytest.fixture(scope="module")
def random_inception():
    torch.manual_seed(0)
    return FIDInceptionV3().eval()


def test_raw_features_are_flattened_and_streamed_in_batches():
    x = np.random.default_rng(0).normal(size=(10, 2, 3)).astype(np.float32)
    feats, logits = extract_features(batched(x, batch_size=3), RawExtractor(), progress=False)
    assert logits is None
    np.testing.assert_array_equal(feats, x.reshape(10, 6))


def test_extract_features_takes_the_first_item_of_tuple_batches():
    x = torch.arange(12.0).reshape(6, 2)
    loader = [(x[:4], torch.zeros(4)), (x[4:], torch.ones(2))]
    feats, _ = extract_features(loader, RawExtractor(), progress=False)
    np.testing.assert_array_equal(feats, x.numpy())


def test_extract_features_on_nothing_is_a_user_error():
    with pytest.raises(UserError, match="empty"):
        extract_features([], RawExtractor(), progress=False)


def test_inception_has_the_fid_architecture(random_inception):
    # torchvision's Inception-v3 has 27,161,264 parameters; the FID variant drops the auxiliary head
    # (3,326,696) and has 1008 instead of 1000 classes (+16,392).
    assert sum(p.numel() for p in random_inception.parameters()) == 27_161_264 - 3_326_696 + 16_392
    keys = random_inception.state_dict().keys()
    assert {"Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.bn.running_var", "fc.bias"} <= set(keys)
    assert not any(k.startswith("AuxLogits") for k in keys)


def test_inception_resizes_to_299_and_gives_2048_features(random_inception):
    x = torch.rand(1, 3, 40, 40) * 2 - 1
    with torch.no_grad():
        feats, logits = random_inception(x)
        # Resizing is the first step, so feeding the 299x299 bilinear resize gives the same output.
        ref, _ = random_inception(F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False))
    assert feats.shape == (1, 2048) and logits.shape == (1, 1008)
    torch.testing.assert_close(feats, ref)


def test_inception_extractor_repeats_grayscale_channels(random_inception):
    extractor = InceptionExtractor(random_inception)
    gray = torch.rand(1, 1, 28, 28) * 2 - 1
    feats, _ = extractor(gray)
    assert feats.shape == (1, 2048)
    with pytest.raises(UserError, match="need images"):
        extractor(torch.zeros(1, 5))


def write_weights(path, net):
    torch.save(net.state_dict(), path)
    return path


def test_missing_weights_name_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / "weights" / INCEPTION_FILE
    with pytest.raises(UserError) as err:
        load_inception()
    message = str(err.value)
    assert str(expected) in message and "pytorch-fid/releases" in message and "--weights" in message
    assert "\n" not in message


def test_a_wrong_weights_file_fails_the_hash_check(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"not the inception weights")
    with pytest.raises(UserError, match="SHA-256") as err:
        get_extractor("inception", weights=path)
    assert str(path) in str(err.value)


def test_weights_with_the_expected_hash_load(tmp_path, monkeypatch, random_inception):
    path = write_weights(tmp_path / INCEPTION_FILE, random_inception)
    monkeypatch.setenv("GANKIT_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    path.rename(tmp_path / "weights" / INCEPTION_FILE)
    monkeypatch.setattr(
        features, "INCEPTION_SHA256", features.sha256_file(tmp_path / "weights" / INCEPTION_FILE)
    )
    net = load_inception()
    for name, tensor in random_inception.state_dict().items():
        torch.testing.assert_close(net.state_dict()[name], tensor)


def test_old_weights_without_batchnorm_counters_load(tmp_path, random_inception):
    state = {k: v for k, v in random_inception.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    load_inception(tmp_path / "old.pth", check_hash=False)


def test_weights_of_another_network_are_a_user_error(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="does not fit"):
        load_inception(tmp_path / "other.pth", check_hash=False)


def test_get_extractor_errors():
    with pytest.raises(UserError, match="unknown feature extractor 'vgg'"):
        get_extractor("vgg")
    with pytest.raises(UserError, match="needs a classifier file"):
        get_extractor("classifier")
    assert get_extractor("raw").name == "raw"
