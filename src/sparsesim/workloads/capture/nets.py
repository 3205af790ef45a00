"""The zoo's PyTorch models and the synthetic tasks they are briefly trained on (torch only here).

Sizes are chosen for a 2-core CPU: images are 3x32x32 and the CNNs use CIFAR-style stems
(3x3 stride-1 first conv, no max-pool; MobileNetV2 also keeps its second stage at stride 1),
so layer structure and channel widths are those of the ImageNet networks in
:mod:`sparsesim.workloads.networks` while the feature maps are smaller. VGG-16 has batch norm (plain
VGG barely moves in a few SGD steps) and a 512-512-classes classifier.

The tasks are seeded, separable classification problems, so a few training steps move the
activation statistics away from those of an untrained network: images are noisy versions
of fixed smooth class templates; token sequences over-sample a class-specific token set;
GRU inputs are noisy class-specific random walks; video clips show a class-coloured square
moving over a static textured background, so consecutive frames differ only around it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CLASSES = 10
IMAGE_HW = 32


# ----------------------------------------------------------------------------- tasks
class ImageTask:
    """3xHxW images: fixed low-frequency class templates plus Gaussian noise."""

    def __init__(self, gen: torch.Generator, classes: int = CLASSES, hw: int = IMAGE_HW) -> None:
        coarse = torch.randn(classes, 3, 4, 4, generator=gen)
        self.templates = F.interpolate(coarse, size=(hw, hw), mode="bilinear", align_corners=False)

    def batch(self, size: int, gen: torch.Generator) -> tuple[tuple[Tensor, ...], Tensor]:
        y = torch.randint(len(self.templates), (size,), generator=gen)
        x = self.templates[y] + 0.5 * torch.randn(size, *self.templates.shape[1:], generator=gen)
        return (x,), y


class TokenTask:
    """Token sequences; class ``c`` draws 40% of its tokens from its own 8-token set."""

    def __init__(self, gen: torch.Generator, vocab: int = 64, length: int = 16, classes: int = 4) -> None:
        self.vocab, self.length = vocab, length
        self.sets = torch.randperm(vocab, generator=gen)[: classes * 8].view(classes, 8)

    def batch(self, size: int, gen: torch.Generator) -> tuple[tuple[Tensor, ...], Tensor]:
        y = torch.randint(len(self.sets), (size,), generator=gen)
        uniform = torch.randint(self.vocab, (size, self.length), generator=gen)
        own = self.sets[y].gather(1, torch.randint(8, (size, self.length), generator=gen))
        pick = torch.rand(size, self.length, generator=gen) < 0.4
        return (torch.where(pick, own, uniform),), y


class SequenceTask:
    """Feature sequences: a smooth class-specific random walk plus small noise per step."""

    def __init__(self, gen: torch.Generator, features: int = 16, length: int = 16, classes: int = 4) -> None:
        walk = torch.randn(classes, length, features, generator=gen).cumsum(1)
        self.templates = walk / walk.std()

    def batch(self, size: int, gen: torch.Generator) -> tuple[tuple[Tensor, ...], Tensor]:
        y = torch.randint(len(self.templates), (size,), generator=gen)
        return (self.templates[y] + 0.1 * torch.randn(size, *self.templates.shape[1:], generator=gen),), y


class VideoTask:
    """Clips (B, T, 3, H, W): a static smooth background and a moving square of the class colour.

    Pixels are quantised to 8 bits like decoded video, so background pixels are bit-identical
    from frame to frame.
    """

    COLOURS = torch.tensor([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.1, 1.0], [1.0, 1.0, 0.1]])

    def __init__(self, gen: torch.Generator, frames: int = 8, hw: int = IMAGE_HW, side: int = 6) -> None:
        self.frames, self.hw, self.side = frames, hw, side

    def batch(self, size: int, gen: torch.Generator) -> tuple[tuple[Tensor, ...], Tensor]:
        hw, side = self.hw, self.side
        y = torch.randint(len(self.COLOURS), (size,), generator=gen)
        coarse = torch.rand(size, 3, 4, 4, generator=gen) * 0.6
        background = F.interpolate(coarse, size=(hw, hw), mode="bilinear", align_corners=False)
        clips = background.unsqueeze(1).repeat(1, self.frames, 1, 1, 1)
        start = torch.randint(hw - side, (size, 2), generator=gen)
        velocity = torch.randint(-2, 3, (size, 2), generator=gen)
        for b in range(size):
            for t in range(self.frames):
                # bounce off the edges: reflect the unbounded position into [0, hw - side]
                pos = (start[b] + velocity[b] * t) % (2 * (hw - side))
                r, c = (torch.where(pos > hw - side, 2 * (hw - side) - pos, pos)).tolist()
                clips[b, t, :, r:r + side, c:c + side] = self.COLOURS[y[b]].view(3, 1, 1)
        return (torch.round(clips * 255) / 255,), y


# ----------------------------------------------------------------------------- CNNs
def _bn_relu(c: int) -> tuple[nn.Module, nn.Module]:
    return nn.BatchNorm2d(c), nn.ReLU(inplace=True)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1, self.relu = _bn_relu(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = nn.Conv2d(cin, width, 1, stride, bias=False) if stride != 1 or cin != width else None
        self.downsample_bn = nn.BatchNorm2d(width) if self.downsample is not None else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample_bn(self.downsample(x))
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        out = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1, self.relu = _bn_relu(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = nn.Conv2d(cin, out, 1, stride, bias=False) if stride != 1 or cin != out else None
        self.downsample_bn = nn.BatchNorm2d(out) if self.downsample is not None else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample_bn(self.downsample(x))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet (He et al. 2016) with a CIFAR stem, or with ``imagenet`` its 7x7/2 stem and 3x3/2
    max-pool; names follow :mod:`sparsesim.workloads.networks`."""

    def __init__(self, block: type, blocks: list[int], classes: int = CLASSES, imagenet: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False) if imagenet else nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.stem_pool = nn.MaxPool2d(3, 2, 1) if imagenet else nn.Identity()
        self.bn1, self.relu = _bn_relu(64)
        cin = 64
        for stage, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
            layers = []
            for b in range(n):
                layers.append(block(cin, width, 2 if (b == 0 and stage > 1) else 1))
                cin = width * block.expansion
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem_pool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def vgg16(classes: int = CLASSES, image_size: int = IMAGE_HW) -> nn.Module:
    """VGG-16 with batch norm; layer names ``conv1_1`` ... ``fc8`` as in :mod:`sparsesim.workloads.networks`.

    At 32x32 the classifier is 512-512-classes; at 224 it is ImageNet's 25088-4096-4096-classes.
    """
    flat, width = (512, 512) if image_size == IMAGE_HW else (512 * (image_size // 32) ** 2, 4096)
    layers: list[tuple[str, nn.Module]] = []
    c = 3
    for s, (k, n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, n + 1):
            layers += [(f"conv{s}_{i}", nn.Conv2d(c, k, 3, 1, 1, bias=False)), (f"bn{s}_{i}", nn.BatchNorm2d(k)),
                       (f"relu{s}_{i}", nn.ReLU(inplace=True))]
            c = k
        layers.append((f"pool{s}", nn.MaxPool2d(2)))
    layers += [("flatten", nn.Flatten()), ("fc6", nn.Linear(flat, width)), ("relu6", nn.ReLU(inplace=True)),
               ("fc7", nn.Linear(width, width)), ("relu7", nn.ReLU(inplace=True)), ("fc8", nn.Linear(width, classes))]
    return nn.Sequential(OrderedDict(layers))


class ConvBNReLU6(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu6(self.bn(self.conv(x)), inplace=True)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = ConvBNReLU6(cin, hidden, 1) if expand != 1 else None
        self.depthwise = ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden)
        self.project = nn.Conv2d(hidden, cout, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        out = self.project_bn(self.project(self.depthwise(x if self.expand is None else self.expand(x))))
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018), width 1.0, CIFAR strides (stem and stage 2 at stride 1),
    or with ``imagenet`` the original strides (both 2)."""

    def __init__(self, classes: int = CLASSES, imagenet: bool = False) -> None:
        super().__init__()
        s2 = 2 if imagenet else 1
        blocks: list[nn.Module] = [ConvBNReLU6(3, 32, 3, s2)]
        c = 32
        for t, k, n, s in [(1, 16, 1, 1), (6, 24, 2, s2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                           (6, 160, 3, 2), (6, 320, 1, 1)]:
            for i in range(n):
                blocks.append(InvertedResidual(c, k, s if i == 0 else 1, t))
                c = k
        blocks.append(ConvBNReLU6(c, 1280, 1))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(1280, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# ----------------------------------------------------------------------------- sequence models
class Attention(nn.Module):
    """Multi-head self-attention; the two attention GEMMs are explicit ``torch.matmul`` calls."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = (y.view(b, t, self.heads, d // self.heads).transpose(1, 2) for y in (self.q(x), self.k(x), self.v(x)))
        scores = torch.matmul(q, k.transpose(-2, -1)) / (d // self.heads) ** 0.5
        context = torch.matmul(scores.softmax(-1), v)
        return self.out(context.transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer with a ReLU MLP."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.relu(self.fc1(self.norm2(x))))


class Transformer(nn.Module):
    """A 2-layer encoder (d=64, 4 heads, MLP 256) over 16 tokens from a 64-word vocabulary."""

    def __init__(self, vocab: int = 64, length: int = 16, dim: int = 64, heads: int = 4, layers: int = 2,
                 classes: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(0.02 * torch.randn(length, dim))
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, 4 * dim) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embed(tokens) + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x).mean(1))


class GRUNet(nn.Module):
    """A GRU cell unrolled over time with explicit Linear layers (so each step is capturable)."""

    def __init__(self, features: int = 16, hidden: int = 64, classes: int = 4) -> None:
        super().__init__()
        self.hidden = hidden
        self.x2h = nn.Linear(features, 3 * hidden)
        self.h2h = nn.Linear(hidden, 3 * hidden)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        h = x.new_zeros(x.shape[0], self.hidden)
        for t in range(x.shape[1]):
            xr, xz, xn = self.x2h(x[:, t]).chunk(3, 1)
            hr, hz, hn = self.h2h(h).chunk(3, 1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            h = (1 - z) * torch.tanh(xn + r * hn) + z * h
        return self.head(h)


class VideoCNN(nn.Module):
    """A 3-conv CNN applied frame by frame (global max-pool), features averaged over time, then a classifier."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1)
        self.conv2 = nn.Conv2d(16, 32, 3, 1, 1)
        self.conv3 = nn.Conv2d(32, 64, 3, 1, 1)
        self.fc = nn.Linear(64, classes)

    def frame(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x), inplace=True), 2)
        x = F.max_pool2d(F.relu(self.conv2(x), inplace=True), 2)
        return F.adaptive_max_pool2d(F.relu(self.conv3(x), inplace=True), 1).flatten(1)

    def forward(self, clips: Tensor) -> Tensor:
        return self.fc(torch.stack([self.frame(clips[:, t]) for t in range(clips.shape[1])], 1).mean(1))


# ----------------------------------------------------------------------------- builders
@dataclass(frozen=True, slots=True)
class Net:
    """A zoo model, its task, and the optimizer that trains it stably in a few steps.

    Each builder below takes the seeded generator that draws the task's fixed templates.
    Optimizer and learning rate were picked per model so that 10-40 steps at batch 8 cut the
    loss well below chance without diverging.
    """

    model: nn.Module
    task: object  # one of the *Task classes: .batch(size, generator) -> (inputs, target)
    optimizer: str  # "sgd" (momentum 0.9) or "adam"
    lr: float

    def make_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer == "adam":
            return torch.optim.Adam(self.model.parameters(), lr=self.lr)
        return torch.optim.SGD(self.model.parameters(), lr=self.lr, momentum=0.9)


def _classes(image_size: int) -> int:
    """ImageNet-size models keep ImageNet's 1000-way classifier (the task uses its first 10 classes)."""
    return CLASSES if image_size == IMAGE_HW else 1000


def resnet18(gen: torch.Generator, image_size: int = IMAGE_HW) -> Net:
    return Net(ResNet(BasicBlock, [2, 2, 2, 2], _classes(image_size), image_size != IMAGE_HW),
               ImageTask(gen, hw=image_size), "sgd", 0.005)


def resnet50(gen: torch.Generator, image_size: int = IMAGE_HW) -> Net:
    return Net(ResNet(Bottleneck, [3, 4, 6, 3], _classes(image_size), image_size != IMAGE_HW),
               ImageTask(gen, hw=image_size), "adam", 1e-3)


def vgg16_net(gen: torch.Generator, image_size: int = IMAGE_HW) -> Net:
    return Net(vgg16(_classes(image_size), image_size), ImageTask(gen, hw=image_size), "sgd", 0.01)


def mobilenetv2(gen: torch.Generator, image_size: int = IMAGE_HW) -> Net:
    return Net(MobileNetV2(_classes(image_size), image_size != IMAGE_HW), ImageTask(gen, hw=image_size), "adam", 1e-3)


def transformer(gen: torch.Generator) -> Net:
    return Net(Transformer(), TokenTask(gen), "sgd", 0.1)


def gru(gen: torch.Generator) -> Net:
    return Net(GRUNet(), SequenceTask(gen), "sgd", 0.2)


def video_cnn(gen: torch.Generator) -> Net:
    return Net(VideoCNN(), VideoTask(gen), "adam", 3e-3)
