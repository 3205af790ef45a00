"""Parameters and dense forward MACs of the zoo models, stored so that listing them needs no torch.

``sparsesim list`` prints these figures for every zoo model. Computing them builds each model
in torch (:func:`sparsesim.workloads.capture.stats.model_stats`), and importing torch alone
costs seconds and hundreds of MB, so the figures of the torch-built models (CNNs, encoders,
the small sequence models) are computed offline by ``tools/zoo_stats.py`` and stored in
:data:`ZOO_STATS`; ``tests/workloads/test_zoo_stats.py`` checks every entry against the real
models. The LLM decoders' figures come from their shapes
(:class:`~sparsesim.workloads.llm_networks.DecoderShape`), as :func:`model_stats` gives them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparsesim.workloads.capture.zoo import MODELS, ZooModel
from sparsesim.workloads.llm_networks import DECODERS


@dataclass(frozen=True, slots=True)
class ModelStats:
    params: int
    macs: int  # dense forward MACs per sample (LLM decoders: per token, attention aside)
    per: str  # "sample" or "token"


ZOO_STATS: dict[tuple[str, int | None], tuple[int, int]] = {
    ("bert", None): (109_485_316, 11_174_218_752),
    ("gru", None): (16_004, 246_016),
    ("mobilenetv2", None): (2_236_682, 87_976_448),
    ("mobilenetv2", 224): (3_504_872, 300_774_272),
    ("resnet18", None): (11_173_962, 555_422_720),
    ("resnet18", 224): (11_689_512, 1_814_073_344),
    ("resnet50", None): (23_520_842, 1_297_829_888),
    ("resnet50", 224): (25_557_032, 4_089_184_256),
    ("silero_vad", None): (309_633, 679_552),  # per 512-sample chunk; 66,048 parameters are the fixed STFT basis
    ("transformer", None): (105_476, 1_638_656),
    ("vgg16", None): (15_249_354, 313_725_952),
    ("vgg16", 224): (138_361_768, 15_470_264_320),
    ("video_cnn", None): (23_844, 22_413_568),
    ("vit", None): (22_050_664, 4_598_882_304),
}
"""``(model, --image-size or None) -> (parameters, dense forward MACs per sample)`` of each
torch-built zoo model, from ``tools/zoo_stats.py``."""


def stat_keys() -> list[tuple[str, int | None]]:
    """The ``(model, image_size)`` of every figure :data:`ZOO_STATS` must hold: each torch-built
    zoo model as built by default and, for the CNNs, at ``--image-size 224``."""
    keys = []
    for name in MODELS.names():
        entry = MODELS.get(name)
        if entry.decoder is None:
            keys += [(name, None)] + ([(name, 224)] if "image_size" in entry.options else [])
    return keys


def zoo_stats(entry: ZooModel, image_size: int | None = None) -> ModelStats | None:
    """The stored figures of zoo model ``entry`` (at ``image_size``); None if not stored (a new
    model whose figures ``tools/zoo_stats.py`` has not yet computed)."""
    if entry.decoder is not None:
        shape = DECODERS.get(entry.decoder)
        return ModelStats(shape.params, shape.active_params_per_token, "token")
    found = ZOO_STATS.get((entry.name, image_size))
    return None if found is None else ModelStats(*found, "sample")
