"""StyleGAN2 family: shapes, demodulation, w_avg and truncation, style mixing, conditioning, w-space API."""

from __future__ import annotations

import pytest
import torch

from gankit.config import Config, LossConfig, NetConfig
from gankit.errors import UserError
from gankit.nets import build_discriminator, build_generator
from gankit.nets.stylegan2 import StyleGAN2Generator, mix_styles, modulated_conv2d
from gankit.tasks.gan import GAN, Generator


def small(**kw) -> NetConfig:
    return NetConfig(family="stylegan2", width=kw.pop("width", 4), mapping=kw.pop("mapping", 2), **kw)


@pytest.mark.parametrize("side", [16, 32, 64, 128, 256])
def test_shapes_at_each_resolution(side):
    torch.manual_seed(0)
    cfg = small(width=2 if side <= 64 else 1)
    G = build_generator(cfg, 8, (3, side, side))
    D = build_discriminator(cfg, (3, side, side))
    with torch.no_grad():
        x = G(torch.randn(2, 8))
        assert x.shape == (2, 3, side, side)
        assert D(x).shape == (2,)
    assert G.num_ws == 2 * side.bit_length() - 4  # 2 log2(side) - 2


def test_bad_sides_and_depth_are_user_errors():
    with pytest.raises(UserError, match="16 to 1024"):
        build_generator(small(), 8, (1, 8, 8))
    with pytest.raises(UserError, match="16 to 1024"):
        build_discriminator(small(), (1, 24, 24))
    with pytest.raises(UserError, match="g.mapping"):
        build_generator(small(mapping=0), 8, (1, 16, 16))


def test_demodulation_normalises_output_variance():
    torch.manual_seed(0)
    x = torch.randn(16, 32, 12, 12)
    weight = torch.randn(24, 32, 3, 3)
    for scale in (0.1, 1.0, 10.0):
        styles = (torch.rand(16, 32) + 0.5) * scale
        out = modulated_conv2d(x, weight, styles, demodulate=True)[:, :, 1:-1, 1:-1]  # borders see padding
        var = out.var(dim=(0, 2, 3))
        assert ((var > 0.8) & (var < 1.25)).all(), (scale, var)
        raw = modulated_conv2d(x, weight, styles, demodulate=False)[:, :, 1:-1, 1:-1].var()
        assert raw > 100 * scale**2  # without demodulation the variance follows the styles and weights
    # the grouped (fused) convolution and the activation-scaling form agree
    styles = torch.randn(16, 32)
    for demod in (True, False):
        a = modulated_conv2d(x, weight, styles, demod, fused=True)
        b = modulated_conv2d(x, weight, styles, demod, fused=False)
        assert torch.allclose(a, b, atol=1e-4)


def test_w_avg_tracks_mapping_output_and_truncation_zero_gives_average_image():
    torch.manual_seed(0)
    G = StyleGAN2Generator(small(), 8, (1, 16, 16))
    G.w_avg_beta = 0.5
    z = torch.randn(64, 8)
    before = G.w_avg.clone()
    G.train()
    for _ in range(12):
        G.map(z)
    w_mean = G.mapping(z).mean(0)
    assert not torch.allclose(before, G.w_avg)
    assert torch.allclose(G.w_avg, w_mean, atol=1e-3)
    G.eval()
    G.noise_mode = "const"
    with torch.no_grad():
        imgs = G(torch.randn(5, 8), truncation_psi=0.0)
        average = G.synthesis(G.w_avg[None, None].expand(1, G.num_ws, -1), "const")
        full = G(torch.randn(5, 8))
    assert torch.allclose(imgs, average.expand_as(imgs), atol=1e-5)
    assert (full - full[:1]).abs().amax() > 1e-3  # without truncation the samples differ


def test_style_mixing_switches_styles_at_the_crossover_layer():
    torch.manual_seed(0)
    G = StyleGAN2Generator(small(width=2), 8, (1, 16, 16)).eval()
    ws1 = G.map(torch.randn(3, 8))
    ws2 = G.map(torch.randn(3, 8))
    affines = [m.affine for m in G.synthesis.modules() if hasattr(m, "affine")]
    # conv4, rgb4, then per block conv0, conv1, rgb: the layer index each affine reads
    layer_of = [0, 1] + [i for b in range(len(G.synthesis.convs)) for i in (1 + 2 * b, 2 + 2 * b, 3 + 2 * b)]
    seen: list[torch.Tensor] = []
    hooks = [a.register_forward_hook(lambda m, inp, out: seen.append(inp[0])) for a in affines]
    for cut in range(G.num_ws + 1):
        seen.clear()
        with torch.no_grad():
            G.synthesis(mix_styles(ws1, ws2, cut), "none")
        for w_in, layer in zip(seen, layer_of):
            expected = ws1[:, 0] if layer < cut else ws2[:, 0]
            assert torch.equal(w_in, expected), (cut, layer)
    for h in hooks:
        h.remove()
    # per-sample crossovers, and the mixing regulariser inside forward uses two latents
    mixed = mix_styles(ws1, ws2, torch.tensor([0, 2, G.num_ws]))
    assert torch.equal(mixed[0], ws2[0]) and torch.equal(mixed[2], ws1[2])
    assert torch.equal(mixed[1, :2], ws1[1, :2]) and torch.equal(mixed[1, 2:], ws2[1, 2:])
    z = torch.randn(4, 8)
    torch.manual_seed(1)
    plain = G(z, noise_mode="none")
    torch.manual_seed(1)
    mixed_imgs = G(z, mixing=1.0, noise_mode="none")
    assert (plain - mixed_imgs).abs().amax(dim=(1, 2, 3)).min() > 1e-4


def test_conditional_generator_and_discriminator():
    torch.manual_seed(0)
    G = build_generator(small(), 8, (1, 16, 16), num_classes=3).eval()
    z = torch.randn(1, 8).expand(3, -1)
    with torch.no_grad():
        x = G(z, torch.arange(3), noise_mode="none")
    assert (x[0] - x[1]).abs().amax() > 1e-4  # the label changes the sample
    for cond in ("projection", "acgan"):
        D = build_discriminator(small(cond=cond), (1, 16, 16), num_classes=3)
        assert D(x, torch.arange(3)).shape == (3,)
    out, cls = D(x, torch.arange(3), aux=True)
    assert out.shape == (3,) and cls.shape == (3, 3)


def test_noise_strength_is_learned_and_const_noise_is_reproducible():
    torch.manual_seed(0)
    G = StyleGAN2Generator(small(), 8, (1, 16, 16)).eval()
    for m in G.modules():
        if hasattr(m, "noise_strength"):
            m.noise_strength.data.fill_(0.5)
    z = torch.randn(2, 8)
    with torch.no_grad():
        a, b = G(z, noise_mode="const"), G(z, noise_mode="const")
        c = G(z, noise_mode="random")
    assert torch.equal(a, b) and not torch.allclose(a, c)
    names = [n for n, _ in G.named_parameters()]
    assert any(n.endswith("noise_strength") for n in names)


def test_path_length_and_mixing_terms_in_the_gan_task():
    torch.manual_seed(0)
    G = StyleGAN2Generator(small(), 8, (1, 16, 16))
    D = build_discriminator(small(), (1, 16, 16))
    task = GAN(G, D, LossConfig(pl=2.0, pl_every=1, mixing=0.9))
    batch = {"x": torch.randn(4, 1, 16, 16)}
    loss, logs = task.g_loss(batch, task.generate(batch), step=0)
    assert "pl" in logs and float(G.pl_mean) > 0
    loss.backward()
    assert G.mapping.layers[0].weight.grad is not None
    dc = build_generator(NetConfig(family="dcgan", width=4), 8, (1, 16, 16))
    with pytest.raises(UserError, match="stylegan2"):
        GAN(dc, D, LossConfig(pl=2.0))


def test_generator_wrapper_truncates_in_w_space():
    torch.manual_seed(0)
    cfg = Config()
    cfg.g = small()
    G = StyleGAN2Generator(cfg.g, 8, (1, 16, 16))
    G.w_avg.normal_()
    gen = Generator(G, cfg, {"kind": "image", "shape": [1, 16, 16], "classes": []}, 0)
    a = gen.sample(4, seed=3, truncation=0.0)
    assert torch.allclose(a, a[:1].expand_as(a), atol=1e-5)
    assert torch.equal(gen.sample(4, seed=3), gen.sample(4, seed=3))
    ws = gen.ws(gen.latents(2, seed=1))
    assert ws.shape == (2, G.num_ws, 8)
    frames = gen.interpolate(0, 1, frames=5, rows=2, space="w")
    assert frames.shape == (10, 1, 16, 16)
    assert torch.allclose(frames[0], gen.synthesize(gen.ws(gen.latents(1, 0)))[0], atol=1e-5)
    with pytest.raises(UserError, match="truncation"):
        gen.sample(2, truncation=1.5)


def _tiny_config():
    import gankit

    cfg = gankit.preset("digits")
    cfg.data.size, cfg.data.batch_size = 16, 8
    cfg.g, cfg.d = small(), small()
    cfg.train.z_dim, cfg.train.steps, cfg.train.threads = 8, 4, 1
    cfg.train.augment, cfg.train.ada_kimg = "ada", 0.05
    cfg.loss.r1, cfg.loss.r1_every, cfg.loss.pl, cfg.loss.pl_every, cfg.loss.mixing = 1.0, 2, 2.0, 2, 0.9
    cfg.log.every, cfg.log.sample_every, cfg.log.checkpoint_every, cfg.log.n_samples = 2, 2, 2, 4
    cfg.log.progress = False
    cfg.health.enabled = False
    return cfg


@pytest.mark.slow
def test_stylegan2_ada_run_resumes_exactly_and_cli_verbs_work(tmp_path, capsys):
    import json

    import gankit
    from gankit import checkpoint as ckpt
    from gankit.cli import main
    from gankit.data.images import save_image

    cfg = _tiny_config()
    gankit.train(cfg, tmp_path / "straight")
    gankit.train(_tiny_config(), tmp_path / "split", steps=2)
    gankit.train(_tiny_config(), tmp_path / "split", steps=4, resume=True)
    a, _ = ckpt.load_latest(tmp_path / "straight" / "checkpoints")
    b, _ = ckpt.load_latest(tmp_path / "split" / "checkpoints")
    assert "D.augment_pipe.p" in a and float(a["D.augment_pipe.p"]) > 0  # p moved, and is checkpointed
    for k in a:
        assert torch.equal(a[k], b[k]), k  # ADA's p and counters, w_avg, pl_mean, weights
    records = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert all("ada_p" in r for r in records) and any("pl" in r for r in records)

    run = str(tmp_path / "straight")
    assert main(["sample", run, "--n", "4", "--truncation", "0.5", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["stylemix", run, "--rows", "1,2", "--cols", "3,4,5", "--out", str(tmp_path / "mix.png")]) == 0
    from PIL import Image

    assert Image.open(tmp_path / "mix.png").size == (4 * 17 * 4 + 4, 3 * 17 * 4 + 4)  # 1+3 cols, 1+2 rows, x4
    assert main(["interpolate", run, "--space", "w", "--frames", "3", "--rows", "1",
                 "--out", str(tmp_path / "w.png")]) == 0
    target = gankit.load(run).sample(1, seed=9)[0]
    save_image(target, tmp_path / "target.png")
    assert main(["project", run, "--image", str(tmp_path / "target.png"), "--steps", "30",
                 "--out", str(tmp_path / "proj")]) == 0
    result = json.loads((tmp_path / "proj" / "projection.json").read_text())
    assert result["final_loss"] < result["initial_loss"]
    assert (tmp_path / "proj" / "w.safetensors").is_file()
    assert main(["stylemix", run, "--rows", "1,x", "--cols", "2", "--out", str(tmp_path / "m.png")]) == 2
    assert main(["stylemix", run, "--rows", "1", "--cols", "2", "--crossover", "99",
                 "--out", str(tmp_path / "m.png")]) == 2
    assert main(["project", run, "--image", str(tmp_path / "nope.png"), "--out", str(tmp_path / "p2")]) == 2
    assert "crossover" in capsys.readouterr().err


def test_path_length_penalty_stays_fp32_under_autocast():
    import copy

    torch.manual_seed(0)
    G = StyleGAN2Generator(small(), 8, (1, 16, 16))
    D = build_discriminator(small(), (1, 16, 16))
    batch = {"x": torch.randn(4, 1, 16, 16)}
    values = []
    for mixed in (False, True):
        task = GAN(copy.deepcopy(G), copy.deepcopy(D), LossConfig(pl=2.0, pl_every=1))
        torch.manual_seed(1)
        fake = task.generate(batch).detach()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
            torch.manual_seed(2)
            values.append(task.g_loss(batch, fake, step=0)[1]["pl"])
    torch.testing.assert_close(values[1], values[0], rtol=1e-5, atol=1e-8)
