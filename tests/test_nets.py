import pytest
import torch

from gankit.config import NetConfig
from gankit.errors import UserError
from gankit.nets import build_discriminator, build_generator


@pytest.mark.parametrize("family", ["dcgan", "resnet"])
@pytest.mark.parametrize("side", [8, 16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_image_shapes(family, side, channels):
    shape = (channels, side, side)
    G = build_generator(NetConfig(family=family, width=8), 16, shape)
    D = build_discriminator(NetConfig(family=family, width=8, spectral_norm=True), shape)
    x = G(torch.randn(4, 16))
    assert x.shape == (4, *shape) and x.abs().max() <= 1
    assert D(x).shape == (4,)


@pytest.mark.parametrize("family", ["mlp", "dcgan", "resnet"])
def test_conditional_pack_and_mbstd(family):
    shape = (2,) if family == "mlp" else (1, 16, 16)
    G = build_generator(NetConfig(family=family, width=8), 8, shape, num_classes=3)
    D = build_discriminator(NetConfig(family=family, width=8, pack=2, mbstd=family != "resnet"), shape, 3)
    y = torch.tensor([0, 1, 2, 0])
    x = G(torch.randn(4, 8), y)
    assert x.shape == (4, *shape)
    assert D(x, y).shape == (2,)
    # the label changes the output (conditional BN starts class-neutral, so perturb the weights first)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.1 * torch.randn_like(p))
    z = torch.randn(1, 8).repeat(2, 1)
    G.eval()
    out = G(z, torch.tensor([0, 1]))
    assert not torch.allclose(out[0], out[1])


def test_bad_sizes_and_families():
    with pytest.raises(UserError, match="power-of-two"):
        build_generator(NetConfig(family="dcgan"), 8, (1, 24, 24))
    with pytest.raises(UserError, match="unknown network family"):
        build_generator(NetConfig(family="vae"), 8, (2,))
    with pytest.raises(UserError, match="needs images"):
        build_generator(NetConfig(family="dcgan"), 8, (2,))


def test_latent_code_is_uniform_and_kept_by_truncation():
    from gankit.nets.mlp import latent_code

    z = torch.randn(80_000, 6, generator=torch.Generator().manual_seed(0))
    codes = latent_code(z, 8)
    share = torch.bincount(codes, minlength=8).float() / len(z)
    assert codes.min() == 0 and codes.max() == 7
    assert (share - 1 / 8).abs().max() < 0.01  # every code equally likely
    assert torch.equal(latent_code(0.3 * z, 8), codes)  # truncation scales z: the codes stay


def test_codes_replace_the_first_two_latent_coordinates():
    from gankit.nets.mlp import latent_code

    torch.manual_seed(0)
    G = build_generator(NetConfig(family="mlp", width=16, norm="none", codes=4), 5, (2,))
    z = torch.randn(2, 5)
    z[1, 2:] = z[0, 2:]
    z[:, :2] = torch.tensor([[1.0, 0.1], [2.0, 0.3]])  # same sector (angle 0.1 vs 0.15 rad)
    assert latent_code(z, 4).tolist() == [2, 2]
    out = G(z)
    assert torch.allclose(out[0], out[1], atol=1e-6)  # within a code only z[2:] matters (rows may round apart)
    z[1, :2] = torch.tensor([-1.0, 0.1])  # another sector, same continuous part
    assert not torch.allclose(G(z)[0], G(z)[1], atol=1e-3)
    D = build_discriminator(NetConfig(family="mlp", width=16, mbstd=True), (2,), codes=4)
    real_logit, code_logits = D(G(torch.randn(8, 5)), info=True)
    assert real_logit.shape == (8,) and code_logits.shape == (8, 4)


def test_codes_with_class_labels():
    # a conditional MLP GAN with a code: the label embedding rides along with the continuous coordinates
    G = build_generator(NetConfig(family="mlp", width=16, norm="none", codes=3), 6, (2,), num_classes=4)
    D = build_discriminator(NetConfig(family="mlp", width=16, cond="projection"), (2,), num_classes=4, codes=3)
    y = torch.tensor([0, 1, 2, 3])
    x = G(torch.randn(4, 6), y)
    real_logit, code_logits = D(x, y, info=True)
    assert x.shape == (4, 2) and real_logit.shape == (4,) and code_logits.shape == (4, 3)
