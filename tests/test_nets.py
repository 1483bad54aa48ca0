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
