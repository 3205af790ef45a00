"""PyTorch capture: record real activations, weights and gradients of a model into a trace.

This package is the only place that imports torch, and only in :mod:`.recorder`,
:mod:`.bdwp`, :mod:`.nets`, :mod:`.llama`, :mod:`.inference` and :mod:`.hf` (transformers too);
LLM inference capture (:func:`capture_llm`, :mod:`.llm`) is torch-free until it runs. Importing the package itself, or :mod:`.zoo` (the model catalogue and
:func:`capture_model`), does not, so ``sparsesim list`` works without torch. The
torch-side names (:func:`capture_module`, :func:`prune_nm_`) load on first use.
"""

from sparsesim.workloads.capture.llm import InferenceCapture, capture_llm
from sparsesim.workloads.capture.zoo import MODELS, ZooModel, capture_model

__all__ = ["MODELS", "InferenceCapture", "ZooModel", "capture_llm", "capture_model", "capture_module", "prune_nm_"]


def __getattr__(name: str):
    if name in ("capture_module", "prune_nm_"):
        from sparsesim.workloads.capture import recorder

        return getattr(recorder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
