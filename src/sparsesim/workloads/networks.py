"""Layer lists (shapes only, no tensors, no torch) of standard networks at ImageNet size.

The transformer encoders (``vit``, ``bert``) list their projections and the two attention
matmuls per layer, named as the zoo's torch models name them. These drive dense design-space studies and benchmarks the way SCALE-Sim topology files do;
traces of real tensors come from :mod:`sparsesim.workloads.capture`. Convs carry their real padding.
"""

from __future__ import annotations

from collections.abc import Callable

from sparsesim.workloads.ops import Conv2d, Linear, Matmul, Op
from sparsesim.core.registry import Registry

NETWORKS: Registry[Callable[[int], list[Op]]] = Registry("network")
"""Layer-list builders by name; each takes the batch size."""


def _conv(name, n, c, k, hw, r, stride=1, pad=None, groups=1) -> Conv2d:
    pad = r // 2 if pad is None else pad
    return Conv2d(name=name, batch=n, in_channels=c, out_channels=k, in_h=hw, in_w=hw, kernel_h=r, kernel_w=r,
                  stride_h=stride, stride_w=stride, pad_h=pad, pad_w=pad, groups=groups)


def _resnet(batch: int, blocks: list[int], bottleneck: bool) -> list[Op]:
    ops: list[Op] = [_conv("conv1", batch, 3, 64, 224, 7, 2, 3)]
    hw, c = 56, 64
    for stage, (n_blocks, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        out = width * 4 if bottleneck else width
        for b in range(n_blocks):
            stride = 2 if (b == 0 and stage > 1) else 1
            p = f"layer{stage}.{b}"
            hw_out = hw // stride
            if bottleneck:
                ops += [_conv(f"{p}.conv1", batch, c, width, hw, 1),
                        _conv(f"{p}.conv2", batch, width, width, hw, 3, stride),
                        _conv(f"{p}.conv3", batch, width, out, hw_out, 1)]
            else:
                ops += [_conv(f"{p}.conv1", batch, c, width, hw, 3, stride),
                        _conv(f"{p}.conv2", batch, width, width, hw_out, 3)]
            if b == 0 and (stride != 1 or c != out):
                ops.append(_conv(f"{p}.downsample", batch, c, out, hw, 1, stride, 0))
            c, hw = out, hw_out
    ops.append(Linear(name="fc", tokens=batch, in_features=c, out_features=1000))
    return ops


@NETWORKS.register("resnet18")
def resnet18(batch: int = 1) -> list[Op]:
    """ResNet-18 (He et al. 2016), 224x224 input: 20 convs and the classifier."""
    return _resnet(batch, [2, 2, 2, 2], bottleneck=False)


@NETWORKS.register("resnet50")
def resnet50(batch: int = 1) -> list[Op]:
    """ResNet-50 (He et al. 2016), 224x224 input: 53 convs and the classifier."""
    return _resnet(batch, [3, 4, 6, 3], bottleneck=True)


@NETWORKS.register("vgg16")
def vgg16(batch: int = 1) -> list[Op]:
    """VGG-16 (Simonyan and Zisserman 2015), 224x224 input."""
    cfg = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
    ops: list[Op] = []
    c, hw = 3, 224
    for s, (k, n) in enumerate(cfg, start=1):
        for i in range(n):
            ops.append(_conv(f"conv{s}_{i + 1}", batch, c, k, hw, 3))
            c = k
        hw //= 2
    ops += [Linear(name="fc6", tokens=batch, in_features=512 * 7 * 7, out_features=4096),
            Linear(name="fc7", tokens=batch, in_features=4096, out_features=4096),
            Linear(name="fc8", tokens=batch, in_features=4096, out_features=1000)]
    return ops


@NETWORKS.register("mobilenetv2")
def mobilenetv2(batch: int = 1) -> list[Op]:
    """MobileNetV2 (Sandler et al. 2018), 224x224 input, width 1.0; depthwise convs grouped."""
    ops: list[Op] = [_conv("features.0", batch, 3, 32, 224, 3, 2)]
    c, hw, idx = 32, 112, 1
    for t, k, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = c * t
            p = f"features.{idx}"
            if t != 1:
                ops.append(_conv(f"{p}.expand", batch, c, hidden, hw, 1))
            ops.append(_conv(f"{p}.depthwise", batch, hidden, hidden, hw, 3, stride, groups=hidden))
            hw //= stride
            ops.append(_conv(f"{p}.project", batch, hidden, k, hw, 1))
            c, idx = k, idx + 1
    ops.append(_conv(f"features.{idx}", batch, c, 1280, hw, 1))
    ops.append(Linear(name="classifier", tokens=batch, in_features=1280, out_features=1000))
    return ops


def _encoder_layer(prefix: str, names: tuple[str, ...], batch: int, tokens: int, dim: int, heads: int,
                   hidden: int) -> list[Op]:
    """One encoder layer: Q, K, V, the two attention matmuls, output projection, MLP."""
    q, k, v, attn, out, fc1, fc2 = names
    rows, hd = batch * tokens, dim // heads
    return [Linear(name=f"{prefix}.{q}", tokens=rows, in_features=dim, out_features=dim),
            Linear(name=f"{prefix}.{k}", tokens=rows, in_features=dim, out_features=dim),
            Linear(name=f"{prefix}.{v}", tokens=rows, in_features=dim, out_features=dim),
            Matmul(name=f"{prefix}.{attn}.matmul0", batch=batch * heads, m=tokens, k=hd, n=tokens),
            Matmul(name=f"{prefix}.{attn}.matmul1", batch=batch * heads, m=tokens, k=tokens, n=hd),
            Linear(name=f"{prefix}.{out}", tokens=rows, in_features=dim, out_features=dim),
            Linear(name=f"{prefix}.{fc1}", tokens=rows, in_features=dim, out_features=hidden),
            Linear(name=f"{prefix}.{fc2}", tokens=rows, in_features=hidden, out_features=dim)]


@NETWORKS.register("vit")
def vit(batch: int = 1) -> list[Op]:
    """ViT-S/16 (Dosovitskiy et al. 2021; DeiT-S width), 224x224 input, 197 tokens, 12 layers."""
    ops: list[Op] = [_conv("patch_embed", batch, 3, 384, 224, 16, 16, 0)]
    names = ("attn.q", "attn.k", "attn.v", "attn", "attn.proj", "fc1", "fc2")
    for i in range(12):
        ops += _encoder_layer(f"blocks.{i}", names, batch, 197, 384, 6, 1536)
    ops.append(Linear(name="head", tokens=batch, in_features=384, out_features=1000))
    return ops


@NETWORKS.register("bert")
def bert(batch: int = 1) -> list[Op]:
    """BERT-base (Devlin et al. 2019), sequence 128, 12 layers, d=768, and the pooler."""
    names = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.self",
             "attention.output.dense", "intermediate.dense", "output.dense")
    ops: list[Op] = []
    for i in range(12):
        ops += _encoder_layer(f"encoder.layer.{i}", names, batch, 128, 768, 12, 3072)
    ops.append(Linear(name="pooler.dense", tokens=batch, in_features=768, out_features=768))
    return ops
