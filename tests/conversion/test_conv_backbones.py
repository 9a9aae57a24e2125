"""Vision backbones: shapes, convertibility (QCFS + Parallel matches the ANN), SB3 features-extractor adapter."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from spikerl.backbones import NatureCNN, SmallResNet, make_backbone
from spikerl.conversion import ConversionSpec, convert


@pytest.mark.parametrize("name,shape,lam", [("nature", (2, 36, 36), 0.125), ("resnet", (2, 8, 8), 1.0)])
def test_qcfs_backbones_convert_and_parallel_matches_ann(name, shape, lam):
    torch.manual_seed(0)
    net = make_backbone(name, shape, features_dim=32, activation="qcfs", L=4, lam_init=lam).double().eval()
    if name == "resnet":  # non-trivial BN statistics to fold
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    net.requires_grad_(False)
    x = torch.rand(6, *shape, dtype=torch.float64)
    ann = net(x)
    assert ann.shape == (6, 32) and bool((ann >= 0).all()) and float((ann > 0).double().mean()) > 0.1
    snn = convert(net, ConversionSpec(T=4, method="parallel"))
    # BN folding changes float rounding only: equality up to 1e-9 unless a value sits on a quantization tie
    assert torch.allclose(snn(x), ann, rtol=0, atol=1e-9)
    relu = make_backbone(name, shape, features_dim=32).double().eval().requires_grad_(False)
    snn = convert(relu, ConversionSpec(T=64, method="max", granularity="channel"),
                  calib_data=torch.rand(32, *shape, dtype=torch.float64))
    err = (snn(x) - relu(x)).abs().max() / relu(x).abs().max()
    assert err < 0.2


def test_backbone_errors():
    with pytest.raises(ValueError, match="at least 36x36"):
        NatureCNN((1, 8, 8))
    with pytest.raises(ValueError, match="unknown backbone"):
        make_backbone("vgg", (1, 8, 8))
    with pytest.raises(ValueError, match="unknown activation"):
        SmallResNet((1, 8, 8), activation="gelu")


def test_sb3_features_extractor_adapter():
    from spikerl.agents.features import BackboneExtractor

    space = gym.spaces.Box(0, 255, (3, 36, 36), np.uint8)
    ext = BackboneExtractor(space, backbone="nature", features_dim=48, activation="qcfs")
    assert ext.features_dim == 48
    assert ext(torch.rand(2, 3, 36, 36)).shape == (2, 48)
    with pytest.raises(ValueError, match="image Box"):
        BackboneExtractor(gym.spaces.Box(-1, 1, (5,), np.float32))
