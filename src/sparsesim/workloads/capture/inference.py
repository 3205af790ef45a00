"""Recording LLM inference, prefill then decode with a KV cache, into a trace (torch only here).

:class:`InferenceRecorder` is the capture :class:`~.recorder.Recorder` with three changes:
it records only the ops whose names the settings select (``--layers``); it keeps one weight
tensor per parameter for the whole trace (the base recorder keeps one per step), so
prefill and every decode step name the same stored weight; and it writes each forward
pass's ops as soon as the pass ends, with phase ``prefill`` or ``decode`` and the decode
step as ``time_step``, all in step 0. The input of each op, and a matmul's second operand
(the K or V cache at its current length), are stored per pass.

:func:`run_inference` drives any decoder given as ``step(tokens, state) -> (logits, state)``
(the zoo's :mod:`.llama` model with its KV cache, or a Hugging Face model with its
``past_key_values``): a seeded random prompt, then greedy decoding.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from sparsesim.workloads.capture.inference_spec import InferenceCapture
from sparsesim.workloads.capture.llama import build
from sparsesim.workloads.capture.recorder import Recorder
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.llm_networks import DecoderShape
from sparsesim.workloads.trace.writer import TraceWriter


class InferenceRecorder(Recorder):
    """Records the selected ops of each forward pass with its inference phase and decode step."""

    def __init__(self, model: nn.Module, writer: TraceWriter, spec: InferenceCapture) -> None:
        super().__init__(model, writer, train=False, sequence=False)
        self.spec = spec

    def wants(self, name: str) -> bool:
        return self.spec.records(name)

    def finish_pass(self, phase: Phase, time_step: int | None) -> None:
        """Write this pass's ops. Weights stay stored (``self.weights`` is kept across passes)
        and op occurrences keep counting, so every pass's tensors get fresh names."""
        for call in self.calls:
            self.writer.add_op(call.op, tensors=call.tensors, phases=(phase,), step=0, time_step=time_step)
        self.calls = []


Step = Callable[[Tensor, object], tuple[Tensor, object]]


def run_inference(model: nn.Module, step: Step, vocab: int, out: Path, spec: InferenceCapture, settings: dict, *,
                  overwrite: bool, progress: bool, prompt: Tensor | None = None) -> Path:
    """Prefill a prompt, then decode greedily, recording the sampled passes.

    ``prompt``: the token ids (``batch x prompt_len``), e.g. real text for a trained model;
    by default a seeded random one (a random-init model has no text it was trained on)."""
    if prompt is None:
        gen = torch.Generator().manual_seed(spec.seed)
        prompt = torch.randint(vocab, (spec.batch, spec.prompt_len), generator=gen)
    elif tuple(prompt.shape) != (spec.batch, spec.prompt_len):
        raise ValueError(f"prompt of shape {tuple(prompt.shape)}, expected {(spec.batch, spec.prompt_len)}")
    with TraceWriter(out, capture=settings, storage_dtype=spec.dtype, overwrite=overwrite) as writer:
        recorder = InferenceRecorder(model, writer, spec)
        try:
            with torch.no_grad():
                with recorder:
                    logits, state = step(prompt, None)
                recorder.finish_pass(Phase.PREFILL, None)
                for t in tqdm(range(spec.gen_len), desc=f"decode {settings.get('model')}", unit="token",
                              file=sys.stderr, disable=None if progress else True):
                    token = logits.argmax(-1, keepdim=True)
                    if spec.sampled(t):
                        with recorder:
                            logits, state = step(token, state)
                        recorder.finish_pass(Phase.DECODE, t)
                    else:
                        logits, state = step(token, state)
        finally:
            recorder.remove_hooks()
    return Path(out)


def capture_zoo_decoder(shape: DecoderShape, out: Path, spec: InferenceCapture, *, overwrite: bool,
                        progress: bool) -> Path:
    """Build zoo decoder ``shape`` (random init, seeded) and capture its inference."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = build(shape, torch.Generator().manual_seed(spec.seed))

        def step(tokens: Tensor, cache):
            cache = model.new_cache() if cache is None else cache
            return model(tokens, cache), cache

        # mlp_act: what act() of the gated FFN is, for replay's swiglu_gate coupling
        settings = {"model": shape.name, "source": "zoo", "params": shape.params, "attention": "grouped",
                    "mlp_act": "relu" if shape.ffn == "relu" else "silu", **spec.settings(), "torch": torch.__version__, "threads": torch.get_num_threads()}
        return run_inference(model, step, shape.vocab, out, spec, settings, overwrite=overwrite, progress=progress)
