"""Parameter count and MACs per sample of a zoo model, computed from the torch model (torch only here).

The model is built on PyTorch's ``meta`` device (shapes without storage or initialisation,
so even the 100M-parameter models cost milliseconds) and run on one sample of its task
while the recorder's lowering counts the dense MACs of every conv2d, linear and matmul
call, exactly the ops a capture records. (A task that cannot draw its sample on ``meta``,
the video clips, builds its small model on the CPU instead.) LLM decoders report their shape's figures
(:class:`~sparsesim.workloads.llm_networks.DecoderShape`; their torch model has the same
parameter count, which the tests check). ``sparsesim list`` prints the same figures without
torch, from :mod:`.zoo_stats` (stored by ``tools/zoo_stats.py``, checked against this by the tests).
"""

from __future__ import annotations

import functools
import importlib

import torch
from torch.overrides import TorchFunctionMode

from sparsesim.workloads.capture.recorder import _KINDS, _LOWER
from sparsesim.workloads.capture.zoo import ZooModel
from sparsesim.workloads.capture.zoo_stats import ModelStats, zoo_stats
from sparsesim.workloads.gemm import Phase


class _MacCounter(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.macs = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = _KINDS.get(func)
        if kind is not None:
            op, _, _ = _LOWER[kind]("op", args, kwargs)
            self.macs += op.gemm(Phase.FWD).macs
        return func(*args, **kwargs)


def model_stats(entry: ZooModel, **options) -> ModelStats:
    """Parameters and forward MACs per sample of zoo model ``entry`` built with ``options``
    (``image_size``, ``layers``)."""
    if entry.decoder is not None:  # the shape's figures, which need no model
        return zoo_stats(entry)
    module, function = entry.factory.split(":")
    factory = functools.partial(getattr(importlib.import_module(module), function), **options)
    gen = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        net = factory(gen)
    params = sum(p.numel() for p in net.model.parameters())
    try:
        with torch.device("meta"):
            inputs, _ = net.task.batch(1, gen)
    except (RuntimeError, NotImplementedError):  # a task that needs values (VideoTask's bouncing square)
        inputs, _ = factory(torch.Generator().manual_seed(0)).task.batch(1, gen)  # small models only
    counter = _MacCounter()
    model = net.model.eval()
    with torch.no_grad(), counter:
        model(*(x.to("meta") for x in inputs))
    return ModelStats(params, counter.macs, "sample")
