"""Networks of the two studies, and a wrapper that moves normalisation inside the model."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instancenorm":  # DC's instance norm: one group per channel, affine
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; valid: instancenorm, batchnorm, none")


def _act(kind: str) -> nn.Module:
    acts = {"relu": nn.ReLU, "leakyrelu": lambda: nn.LeakyReLU(0.01), "sigmoid": nn.Sigmoid}
    if kind not in acts:
        raise ValueError(f"unknown activation {kind!r}; valid: {', '.join(acts)}")
    return acts[kind]()


def _pool(kind: str) -> nn.Module:
    pools = {"avgpool": lambda: nn.AvgPool2d(2), "maxpool": lambda: nn.MaxPool2d(2), "none": nn.Identity}
    if kind not in pools:
        raise ValueError(f"unknown pooling {kind!r}; valid: {', '.join(pools)}")
    return pools[kind]()


class ConvNet(nn.Module):
    """DC's ConvNet: depth x [conv3x3(width), norm, act, pool], then a linear head.

    For 28x28 inputs the first conv pads by 3 (28 -> 32) as in the official code, so
    depth 3 with pooling ends at 4x4 and the head sees width * 16 = 2048 features.
    PyTorch's default (Kaiming-uniform) initialisation.
    """

    FAST_PATH = ("bf16", "compile")  # what `engine.runner` may use for it: both measured faster

    def __init__(self, channels: int = 1, num_classes: int = 10, width: int = 128, depth: int = 3,
                 norm: str = "instancenorm", act: str = "relu", pool: str = "avgpool",
                 im_size: int = 28):
        super().__init__()
        layers: list[nn.Module] = []
        size, in_ch = im_size, channels
        for d in range(depth):
            pad = 3 if (d == 0 and im_size == 28) else 1
            layers += [nn.Conv2d(in_ch, width, 3, padding=pad), _norm(norm, width), _act(act)]
            size += 2 * pad - 2
            if pool != "none":
                layers.append(_pool(pool))
                size //= 2
            in_ch = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.num_features = width * size * size
        self.classifier = nn.Linear(self.num_features, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LeNet(nn.Module):
    """LeNet-5 for 28x28 grayscale: conv5x5(6, pad 2)-ReLU-maxpool, conv5x5(16)-ReLU-maxpool,
    FC 400-120-84-10 with ReLU (the modern LeNet-5 variant, ReLU and max-pooling)."""

    FAST_PATH = ("bf16",)  # compiled, it measured slower than eager (engine's docstring)

    def __init__(self, channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MnistNet(nn.Module):
    """Papernot et al. (2016) / Carlini & Wagner (2017) MNIST network: conv3x3 32, 32,
    maxpool, conv3x3 64, 64, maxpool, FC 200, FC 200 (dropout 0.5), FC 10, ReLU."""

    # Predictions and attacks in fp32 (compile measured slower, 0.82x); its training runs
    # through `distillation.Tempered`, whose FAST_PATH allows bf16.
    FAST_PATH = ()

    def __init__(self, channels: int = 1, num_classes: int = 10, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(64 * 4 * 4, 200), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(200, 200), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(200, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class Normalized(nn.Module):
    """Takes pixel-space inputs in [0, 1] and normalises inside, so an attack's epsilon
    means the same for every model."""

    def __init__(self, model: nn.Module, mean: float, std: float):
        super().__init__()
        self.model, self.mean, self.std = model, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


ARCHITECTURES = {"convnet": ConvNet, "lenet": LeNet, "mnistnet": MnistNet}
DISPLAY_NAMES = {"convnet": "ConvNet", "lenet": "LeNet", "mnistnet": "MNIST network"}  # in figures and tables


def build(arch: str, **kwargs) -> nn.Module:
    """A freshly initialised network by name."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)

@contextmanager
def frozen(model: nn.Module):
    """Eval mode and no parameter gradients while attacking; both restored afterwards."""
    was_training, flags = model.training, [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)
