"""SRGAN: shapes for both scales, tiled inference, the two phases and their losses, the optional feature
network, fit/apply end to end, bad input."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from gankit.cli import main
from gankit.errors import UserError
from gankit.nets.srgan import SRDiscriminator, SRResNet, VGG19Features
from gankit.tasks.upscale import (
    SRGAN,
    PatchBatches,
    UpscaleConfig,
    blend_weights,
    load,
    load_vgg,
    tile_starts,
    tiled,
)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("hw", [(8, 8), (13, 21)])
def test_shapes_for_scales(scale, hw):
    G = SRResNet(3, width=4, n_blocks=2, scale=scale)
    with torch.no_grad():
        y = G(torch.rand(2, 3, *hw) * 2 - 1)
    assert y.shape == (2, 3, hw[0] * scale, hw[1] * scale) and y.abs().max() <= 1
    assert SRDiscriminator(3, width=4)(torch.rand(2, 3, hw[0] * scale, hw[1] * scale)).shape == (2, 1)
    with pytest.raises(ValueError):
        SRResNet(scale=3)


def test_residual_generator_starts_at_bicubic():
    G = SRResNet(3, width=4, n_blocks=1, scale=4, residual=True).eval()
    x = torch.rand(1, 3, 6, 7) * 2 - 1
    with torch.no_grad():
        assert torch.equal(G(x), torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic"))


def test_patch_batches_pair_lr_and_hr():
    images = [torch.rand(3, 40, 50) * 2 - 1, torch.rand(3, 30, 30) * 2 - 1]
    batches = PatchBatches(images, patch=16, scale=4, batch_size=5, device=torch.device("cpu"), seed=0)
    b = next(batches)
    assert b["hr"].shape == (5, 3, 16, 16) and b["lr"].shape == (5, 3, 4, 4)
    # the low-resolution patch is the bicubic reduction of the high-resolution one
    assert torch.allclose(b["lr"].mean(dim=(2, 3)), b["hr"].mean(dim=(2, 3)), atol=0.05)
    state = batches.state_dict()
    nxt = next(batches)
    batches.load_state_dict(state)
    assert torch.equal(next(batches)["hr"], nxt["hr"])  # resumable


def test_tile_layout_covers_everything():
    assert tile_starts(100, 40, 10) == [0, 30, 60]
    assert tile_starts(30, 40, 10) == [0]
    w = blend_weights(30, 40, 100, 16)
    assert w[:4].sum() == 0 and w[-4:].sum() == 0 and w[20] == 1  # inner edges never count


@pytest.mark.parametrize("scale,residual", [(2, False), (4, True)])
def test_tiling_equals_whole_image(scale, residual):
    torch.manual_seed(0)
    G = SRResNet(3, width=4, n_blocks=1, scale=scale, residual=residual).eval()
    if residual:
        torch.nn.init.normal_(G.tail.weight, 0, 0.05)  # not the zero start, so the network part is tested
    x = torch.rand(1, 3, 20, 60) * 2 - 1
    r = G.receptive_radius
    with torch.no_grad():
        whole = G(x)
        exact = tiled(G, x, scale, tile=4 * r + 8, overlap=4 * r)  # overlap // 4 >= the receptive radius
        rough = tiled(G, x, scale, tile=16, overlap=4)
    assert torch.allclose(exact, whole, atol=1e-5)
    assert (rough - whole).abs().max() > 1e-3  # the test can tell a seam when there is one


def _cfg(**kw):
    cfg = UpscaleConfig(scale=2, patch=16, batch_size=2, width=8, n_blocks=1, d_width=4, **kw)
    cfg.log.progress = False
    return cfg


def test_phases_and_loss_weights():
    torch.manual_seed(0)
    cfg = _cfg(adv_weight=0.5)
    task = SRGAN(SRResNet(3, 8, 1, 2), SRDiscriminator(3, 4), cfg)
    batch = {"hr": torch.rand(2, 3, 16, 16) * 2 - 1}
    batch["lr"] = batch["hr"][:, :, ::2, ::2]
    with torch.no_grad():
        assert task.generate(batch) is None  # pre-training: no pass for the idle discriminator
    d, logs = task.d_loss(batch, None, 0)
    assert d.item() == 0 and not logs
    fake = task.generate(batch)
    g, logs = task.g_loss(batch, fake, 0)
    assert g.item() == pytest.approx(torch.nn.functional.mse_loss(fake, batch["hr"]).item())
    task.phase = "gan"
    g, logs = task.g_loss(batch, fake, 0)
    assert g.item() == pytest.approx((logs["loss_pixel"] + 0.5 * logs["loss_g_adv"]).item(), rel=1e-5)
    task.cfg.pixel_weight = 0.0
    g, logs = task.g_loss(batch, fake, 0)
    assert g.item() == pytest.approx((0.5 * logs["loss_g_adv"]).item(), rel=1e-5)
    d, logs = task.d_loss(batch, fake.detach(), 0)
    assert d.item() > 0 and "d_real" in logs


def test_feature_network_is_optional_and_local(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_HOME", str(tmp_path / "home"))
    with pytest.raises(UserError, match="vgg19-dcbb9e9d.pth"):
        load_vgg()
    torch.manual_seed(0)
    with torch.device("meta"):  # shapes only: random weights are made directly, faster than the init
        shapes = {k: v.shape for k, v in VGG19Features().state_dict().items()}
    state = {k: torch.randn(shape) * 0.05 for k, shape in shapes.items()}
    save_file(state, tmp_path / "vgg.safetensors")
    vgg = load_vgg(tmp_path / "vgg.safetensors")
    assert torch.equal(vgg.features[34].weight, state["features.34.weight"])  # conv5_4, the last layer
    with torch.no_grad():
        assert vgg(torch.rand(1, 3, 16, 16) * 2 - 1).shape == (1, 512, 1, 1)
    save_file({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.safetensors")
    with pytest.raises(UserError, match="not VGG-19 weights"):
        load_vgg(tmp_path / "bad.safetensors")
    task = SRGAN(SRResNet(3, 8, 1, 2), SRDiscriminator(3, 4), _cfg(content="vgg54"), vgg)
    task.phase = "gan"
    hr = torch.rand(2, 3, 16, 16) * 2 - 1
    _, logs = task.g_loss({"hr": hr, "lr": hr[:, :, ::2, ::2]}, task.G(hr[:, :, ::2, ::2]), 0)
    assert logs["loss_feature"] > 0


def _write(folder, sizes, seed=0):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i, (w, h) in enumerate(sizes):
        # smooth images: a low-resolution random field, enlarged
        small = rng.integers(0, 256, (h // 4, w // 4, 3)).astype(np.uint8)
        Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("upscale")
    data = _write(root / "photos", [(40, 32), (36, 44), (48, 48)])
    args = ["upscale", "fit", "--data", data, "--out", root / "run", "--scale", "2", "--steps", "4", "--quiet",
            "--set", "patch=16", "--set", "width=8", "--set", "n_blocks=1", "--set", "d_width=4",
            "--set", "batch_size=2", "--set", "log.every=2", "--set", "log.checkpoint_every=1",
            "--set", "log.keep_last=1", "--set", "log.sample_every=4"]
    assert main([str(x) for x in args]) == 0
    return root


def test_fit_and_apply_end_to_end(run, tmp_path):
    final, pre = load(run / "run"), load(run / "run", phase="pretrain")
    assert final.step == 4 and pre.step == 2  # the end of pre-training is kept beside the last checkpoint
    assert any(not torch.equal(a, b) for a, b in zip(final.G.state_dict().values(), pre.G.state_dict().values()))
    logs = (run / "run" / "metrics.jsonl").read_text().splitlines()
    assert '"loss_g_adv"' not in logs[0] and '"loss_g_adv"' in logs[1]  # pre-training, then adversarial
    Image.fromarray(np.zeros((10, 13), np.uint8)).save(tmp_path / "in.png")
    assert main(["upscale", "apply", str(run / "run"), "--in", str(tmp_path / "in.png"), "--out",
                 str(tmp_path / "out.png"), "--tile", "8", "--overlap", "4"]) == 0
    out = Image.open(tmp_path / "out.png")
    assert out.size == (26, 20) and out.mode == "L"
    assert main(["upscale", "apply", str(run / "run"), "--in", str(run / "photos"), "--out", str(tmp_path / "o"),
                 "--pretrained"]) == 0
    assert Image.open(tmp_path / "o" / "2.png").size == (96, 96)


def _error(capsys, *args):
    code = main([str(x) for x in args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "error" in err
    return err


def test_bad_input(run, tmp_path, capsys):
    small = _write(tmp_path / "small", [(40, 40), (12, 40)])
    assert "smaller than the training patch" in _error(capsys, "upscale", "fit", "--data", small, "--out",
                                                       tmp_path / "r", "--scale", "2", "--set", "patch=16")
    (tmp_path / "empty").mkdir()
    assert "no images" in _error(capsys, "upscale", "fit", "--data", tmp_path / "empty", "--out", tmp_path / "r")
    assert "patch" in _error(capsys, "upscale", "fit", "--data", run / "photos", "--out", tmp_path / "r",
                             "--set", "patch=18")
    Image.fromarray(np.zeros((3, 9), np.uint8)).save(tmp_path / "tiny.png")
    assert "too small" in _error(capsys, "upscale", "apply", run / "run", "--in", tmp_path / "tiny.png",
                                 "--out", tmp_path / "x.png")
    # the wrong kind of run, both ways
    assert "not a translate" in _error(capsys, "translate", "apply", run / "run", "--in", run / "photos" / "0.png",
                                       "--out", tmp_path / "x.png")
    assert "not an upscale" in _error(capsys, "upscale", "apply", _translate_run(tmp_path), "--in",
                                      run / "photos" / "0.png", "--out", tmp_path / "x.png")
    assert "vgg19" in _error(capsys, "upscale", "fit", "--data", run / "photos", "--out", tmp_path / "r3",
                             "--set", "content=vgg54", "--set", "feature_weights=" + str(tmp_path / "none.pth"))


def _translate_run(tmp_path):
    from gankit.tasks.translate import TranslateConfig, fit

    cfg = TranslateConfig(size=32, g_width=2, g_blocks=1, d_width=2, batch_size=1)
    cfg.train.steps = 1
    cfg.log.progress = False
    fit(torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1, tmp_path / "tr", cfg)
    return tmp_path / "tr"
