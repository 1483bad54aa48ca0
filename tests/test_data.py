import numpy as np
import pytest
import torch
from PIL import Image

from gankit.config import DataConfig
from gankit.data import Batches, load_data, to_data_units
from gankit.data.builtin import MIXTURES
from gankit.errors import UserError


def test_digits_builtin():
    ds = load_data(DataConfig(source="digits", size=16))
    assert ds.x.shape == (1797, 1, 16, 16) and ds.num_classes == 10
    assert ds.x.min() >= -1 and ds.x.max() <= 1 and ds.x.std() > 0.3


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mixtures_in_data_units(name):
    ds = load_data(DataConfig(source=name))
    pts = to_data_units(ds.x, ds.meta()).numpy()
    centers, std = MIXTURES[name]
    d = np.linalg.norm(pts[:, None] - centers[None], axis=2)
    assert np.percentile(d.min(axis=1), 99) < 4 * std  # every point near a centre
    counts = np.bincount(d.argmin(axis=1), minlength=len(centers))
    assert counts.min() > 0.8 * len(pts) / len(centers)  # equal weights


def _write(path, mode="RGB", size=(20, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color=128 if mode == "L" else (200, 10, 10)).save(path)


def test_image_folder_classes_and_resize(tmp_path):
    _write(tmp_path / "cats" / "a.png")
    _write(tmp_path / "cats" / "b.jpg")
    _write(tmp_path / "dogs" / "c.webp")
    _write(tmp_path / "dogs" / "d.png", mode="RGBA")
    ds = load_data(DataConfig(source=str(tmp_path), size=8))
    assert ds.x.shape == (4, 3, 8, 8) and ds.classes == ["cats", "dogs"] and ds.y.tolist() == [0, 0, 1, 1]
    assert abs(ds.x[0, 0].mean().item() - (200 / 127.5 - 1)) < 1e-2


def test_grey_folder_stays_grey(tmp_path):
    for i in range(3):
        _write(tmp_path / f"{i}.png", mode="L")
    ds = load_data(DataConfig(source=str(tmp_path), size=8))
    assert ds.x.shape == (3, 1, 8, 8) and ds.y is None


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "no images"),
    (lambda p: (p / "notes.txt").write_text("hi"), "not an image file"),
    (lambda p: (p / "broken.png").write_bytes(b"\x89PNG not really"), "cannot read image"),
])
def test_bad_folders(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(UserError, match=message):
        load_data(DataConfig(source=str(tmp_path), size=8))


def test_missing_source():
    with pytest.raises(UserError, match="data not found"):
        load_data(DataConfig(source="/no/such/folder"))
    with pytest.raises(UserError, match="built-in data sets are"):
        load_data(DataConfig(source="digitz"))


def test_npz_with_labels(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (10, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=x, labels=np.arange(10) % 2)
    ds = load_data(DataConfig(source=str(tmp_path / "d.npz"), size=8, conditional=True))
    assert ds.x.shape == (10, 3, 8, 8) and ds.num_classes == 2
    np.savez(tmp_path / "bad.npz", images=x, labels=np.arange(10) - 1)
    with pytest.raises(UserError, match="out of range"):
        load_data(DataConfig(source=str(tmp_path / "bad.npz"), size=8))
    np.savez(tmp_path / "one.npz", images=x, labels=np.zeros(10, dtype=int))
    with pytest.raises(UserError, match="at least two classes"):
        load_data(DataConfig(source=str(tmp_path / "one.npz"), size=8, conditional=True))


def test_vectors_npy_standardised(tmp_path):
    x = np.random.default_rng(0).normal(5, 3, (100, 4)).astype(np.float32)
    np.save(tmp_path / "v.npy", x)
    ds = load_data(DataConfig(source=str(tmp_path / "v.npy")))
    assert ds.kind == "vector" and abs(ds.x.mean().item()) < 1e-5
    assert np.allclose(to_data_units(ds.x, ds.meta()).numpy(), x, atol=1e-4)


def test_batches_resume_exactly():
    ds = load_data(DataConfig(source="ring8"))
    a = Batches(ds, 1000, torch.device("cpu"), seed=3)
    for _ in range(60):  # crosses an epoch boundary (50 batches per epoch)
        next(a)
    state = {k: v.clone() for k, v in a.state_dict().items()}
    want = [next(a)["x"] for _ in range(5)]
    b = Batches(ds, 1000, torch.device("cpu"), seed=99)
    b.load_state_dict(state)
    assert all(torch.equal(w, next(b)["x"]) for w in want)


def test_host_placement_gives_the_same_batches():
    """The path for data sets too big for the accelerator (staging buffers, asynchronous copies) must
    yield exactly what the on-device path yields, and a batch must survive the next two draws."""
    ds = load_data(DataConfig(source="digits", size=16, conditional=True))
    dev = Batches(ds, 64, torch.device("cpu"), seed=3, z_dim=4, placement="device")
    host = Batches(ds, 64, torch.device("cpu"), seed=3, z_dim=4, placement="host")
    assert dev.on_device and not host.on_device
    kept = []
    for _ in range(60):  # crosses an epoch boundary
        a, b = next(dev), next(host)
        assert all(torch.equal(a[k], b[k]) for k in ("x", "y", "z"))
        kept.append((a["x"], b["x"]))
    assert all(torch.equal(a, b) for a, b in kept)  # no batch was overwritten by a later one


def test_folder_decoding_threads_keep_order(tmp_path):
    for i in range(12):
        path = tmp_path / f"{i:02d}.png"
        Image.new("L", (10, 10), color=i * 20).save(path)
    one = load_data(DataConfig(source=str(tmp_path), size=8, workers=1))
    many = load_data(DataConfig(source=str(tmp_path), size=8, workers=4))
    assert torch.equal(one.x, many.x)
    assert one.x[:, 0, 0, 0].argsort().tolist() == list(range(12))  # files in name order


def test_pixel_limit_holds_under_threaded_decoding(tmp_path, monkeypatch):
    import warnings

    for i in range(8):
        Image.new("L", (40, 40), color=i).save(tmp_path / f"{i}.png")
    before = list(warnings.filters)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # every 40x40 image is now over the limit
    with pytest.raises(UserError, match="too large"):
        load_data(DataConfig(source=str(tmp_path), size=8, workers=4))
    assert warnings.filters == before  # no thread left a filter behind
