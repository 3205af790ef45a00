"""PyTorch capture: record real activations, weights and gradients of a model into a trace.

This package is the only place that imports torch, and only in :mod:`.recorder`,
:mod:`.bdwp`, :mod:`.nets`, :mod:`.encoders`, :mod:`.llama`, :mod:`.inference`, :mod:`.decompose`,
:mod:`.coverage`, :mod:`.stats`, :mod:`.hf` (transformers too), and in :mod:`.user_model` and :mod:`.api` once
a capture runs; importing the package itself, :mod:`.zoo` (the model catalogue and
:func:`capture_zoo`), :mod:`.zoo_stats` (the models' parameter and MAC counts, stored) or
:mod:`.llm` (LLM inference capture, :func:`capture_llm`) does not, so ``sparsesim list`` works
without torch and does not load it. :func:`capture_model` captures the user's own
``nn.Module`` (the Python face of ``trace capture --model FILE.py:NAME``). The torch-side names
(:func:`capture_module`, :func:`prune_nm_`) load on first use.
"""

from sparsesim.workloads.capture.api import capture_model, capture_user_model
from sparsesim.workloads.capture.llm import InferenceCapture, capture_llm
from sparsesim.workloads.capture.zoo import MODELS, ZooModel, capture_zoo

__all__ = ["MODELS", "InferenceCapture", "ZooModel", "capture_llm", "capture_model", "capture_module",
           "capture_user_model", "capture_zoo", "prune_nm_"]


def __getattr__(name: str):
    if name in ("capture_module", "prune_nm_"):
        from sparsesim.workloads.capture import recorder

        return getattr(recorder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
