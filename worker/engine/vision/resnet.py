"""ResNet body + fast.ai head, split into the layer groups that freezing and discriminative rates act on."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torchvision
from torch import nn

BODY_LAYERS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


class AdaptiveConcatPool2d(nn.Module):
    """Max and average pooling side by side: the head sees both the strongest and the typical activation."""

    def __init__(self) -> None:
        super().__init__()
        self.max = nn.AdaptiveMaxPool2d(1)
        self.avg = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.max(x), self.avg(x)], dim=1)


def fastai_head(n_features: int, n_classes: int) -> nn.Sequential:
    """fast.ai's create_head: concat pool, then BN-dropout-linear twice with a 512-wide hidden layer."""
    head = nn.Sequential(OrderedDict([
        ("pool", AdaptiveConcatPool2d()),
        ("flatten", nn.Flatten()),
        ("bn1", nn.BatchNorm1d(2 * n_features)),
        ("drop1", nn.Dropout(0.25)),
        ("fc1", nn.Linear(2 * n_features, 512)),
        ("relu", nn.ReLU(inplace=True)),
        ("bn2", nn.BatchNorm1d(512)),
        ("drop2", nn.Dropout(0.5)),
        ("fc2", nn.Linear(512, n_classes)),
    ]))
    for linear in (head.fc1, head.fc2):
        nn.init.kaiming_normal_(linear.weight)
        nn.init.zeros_(linear.bias)
    return head


def resnet_body(arch: str) -> tuple[nn.Sequential, int]:
    """torchvision's ResNet without avgpool/fc (keys as torchvision's) and its output channel count."""
    resnet = torchvision.models.get_model(arch, weights=None)
    return nn.Sequential(OrderedDict((name, getattr(resnet, name)) for name in BODY_LAYERS)), resnet.fc.in_features


class LayerGroupModel(nn.Module):
    """A ResNet body plus a new part on top, trained as RESNET_GROUPS (fineserve_common.tasks) groups: stem +
    early stages, late stages, the new part. Early features are generic and need the least change."""

    body: nn.Sequential

    def new_part(self) -> nn.Module:
        raise NotImplementedError

    def layer_groups(self) -> list[nn.ModuleList]:
        b = self.body
        return [nn.ModuleList([b.conv1, b.bn1, b.layer1, b.layer2]), nn.ModuleList([b.layer3, b.layer4]),
                nn.ModuleList([self.new_part()])]

    def freeze_to(self, n: int, train_bn: bool = True) -> None:
        """Freeze groups before n; BatchNorm stays trainable (fast.ai's train_bn) so it adapts to new data."""
        for i, group in enumerate(self.layer_groups()):
            for module in group.modules():
                trainable = i >= n or (train_bn and isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)))
                for param in module.parameters(recurse=False):
                    param.requires_grad_(trainable)


class ResNetClassifier(LayerGroupModel):
    """Single-label image classifier. The body is torchvision's ResNet without avgpool/fc, so its state-dict
    keys are torchvision's prefixed by "body." and torchvision checkpoints load into it unchanged."""

    def __init__(self, arch: str, n_classes: int) -> None:
        super().__init__()
        self.arch = arch
        self.body, n_features = resnet_body(arch)
        self.head = fastai_head(n_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def new_part(self) -> nn.Module:
        return self.head
