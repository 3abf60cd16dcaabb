"""U-Net on a ResNet encoder (fast.ai's unet_learner): the classifier's body, a decoder that climbs back up with
a skip connection from every encoder stage, and per-pixel class logits at the input's size.

Written here rather than taken from segmentation-models-pytorch: its Unet builds its own encoder by name, and
ours must be the body that every base-weight source (torchvision, a file, a stored fineserve classifier) loads.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .resnet import LayerGroupModel, resnet_body

SKIP_STAGES = ("relu", "layer1", "layer2", "layer3")
"""Encoder outputs the decoder joins on its way up (strides 2, 4, 8, 16); layer4 (stride 32) is its input."""


def _conv_bn_relu(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(n_in, n_out, 3, padding=1, bias=False), nn.BatchNorm2d(n_out), nn.ReLU(inplace=True))


def _channels(stage: nn.Module) -> int:
    """Output channels of an encoder stage: the width of its last BatchNorm."""
    return [m for m in stage.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features


class UpBlock(nn.Module):
    """Upsample to the skip's size (any size: odd ones too), join the BatchNorm'd skip, two 3x3 convs."""

    def __init__(self, n_in: int, n_skip: int, n_out: int) -> None:
        super().__init__()
        self.skip_bn = nn.BatchNorm2d(n_skip)
        self.conv1 = _conv_bn_relu(n_in + n_skip, n_out)
        self.conv2 = _conv_bn_relu(n_out, n_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv2(self.conv1(torch.cat([x, self.skip_bn(skip)], dim=1)))


class UNetDecoder(nn.Module):
    """Middle conv on the deepest features, one UpBlock per skip (deepest first), then a last block at the
    input's size that also sees the input image, and a 1x1 conv to class logits.

    Each block is half as wide as its skip (32 to 256 channels), narrower than fast.ai's: the blocks at high
    resolution cost the most, and at full width the decoder took 2.5x the encoder's compute on a ResNet-18.
    """

    def __init__(self, skip_channels: list[int], deepest: int, n_classes: int) -> None:
        super().__init__()
        n_in = min(deepest, 512)
        self.middle = _conv_bn_relu(deepest, n_in)
        blocks = []
        for n_skip in reversed(skip_channels):
            n_out = min(max(n_skip // 2, 32), 256)
            blocks.append(UpBlock(n_in, n_skip, n_out))
            n_in = n_out
        self.blocks = nn.ModuleList(blocks)
        self.final = UpBlock(n_in, 3, 16)
        self.classifier = nn.Conv2d(16, n_classes, 1)

    def forward(self, image: torch.Tensor, skips: list[torch.Tensor], deepest: torch.Tensor) -> torch.Tensor:
        x = self.middle(deepest)
        for block, skip in zip(self.blocks, reversed(skips), strict=True):
            x = block(x, skip)
        return self.classifier(self.final(x, image))


class ResNetUNet(LayerGroupModel):
    """Semantic segmentation: (N, 3, H, W) images -> (N, n_classes, H, W) per-pixel logits, for any H and W
    (no multiple-of-32 rule).

    The encoder is `body`, keyed like ResNetClassifier's, so load_base_weights fills it from any source and
    Grad-CAM hooks body.layer4 in both. Layer groups: stem+layer1+layer2 / layer3+layer4 / decoder.
    """

    def __init__(self, arch: str, n_classes: int) -> None:
        super().__init__()
        self.arch = arch
        self.body, deepest = resnet_body(arch)
        skips = [
            _channels(getattr(self.body, name)) if name != "relu" else self.body.bn1.num_features
            for name in SKIP_STAGES
        ]
        self.decoder = UNetDecoder(skips, deepest, n_classes)

    def new_part(self) -> nn.Module:
        return self.decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, h = [], x
        for name, stage in self.body.named_children():
            h = stage(h)
            if name in SKIP_STAGES:
                skips.append(h)
        return self.decoder(x, skips, h)
