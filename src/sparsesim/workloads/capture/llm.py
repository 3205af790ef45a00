"""LLM inference capture, the torch-free entry point: :func:`capture_llm` checks, then records.

``trace capture --mode prefill|decode`` records a decoder's inference with a KV cache: the
prompt's forward pass (phase ``prefill``), then ``gen_len`` greedy decode steps (phase
``decode``, ``time_step`` = the step), weights stored once per trace (the manifest layout
is in :mod:`sparsesim.workloads.trace.format`). The model is a zoo decoder (``llama_*``,
random init, :mod:`.llama`), a Hugging Face causal LM from a local directory (``hf_dir``),
or a random-init one built from a Hugging Face config file (``hf_config``) (:mod:`.hf`).

Memory stays bounded: tensors go to the trace writer as each op runs and are flushed to
disk in shards; ``layers`` (a regular expression searched in op names) and
``sample_steps`` (record every k-th decode step; the others run unrecorded) capture a
subset; ``dtype`` fp16/bf16 halves the bytes. Before anything runs, the bytes the capture
would write are estimated from the model's shape (:func:`estimate_bytes`, exact for the
tensors of Llama-style models) and a capture above ``max_bytes`` is refused (the settings and the
estimate live in :mod:`.inference_spec`, which the torch halves import too).
"""

from __future__ import annotations

from pathlib import Path

from sparsesim.core.errors import InputError, arg_error
from sparsesim.core.registry import suggest
from sparsesim.workloads.capture.pretrained import PRETRAINED, source_file
from sparsesim.workloads.capture.inference_spec import LLM_MODES, InferenceCapture, check_budget, estimate_bytes
from sparsesim.workloads.llm_networks import DECODERS
from sparsesim.workloads.trace.writer import check_output_dir

__all__ = ["LLM_MODES", "InferenceCapture", "capture_llm", "check_budget", "estimate_bytes"]


def capture_llm(*, out: Path | str, spec: InferenceCapture, model: str | None = None, hf_dir: Path | str | None = None,
                hf_config: Path | str | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """Capture the inference of one decoder (give exactly one of ``model``, ``hf_dir``, ``hf_config``).

    Returns the trace path. Needs torch; ``hf_dir``/``hf_config`` need transformers
    (``pip install 'sparsesim[hf]'``). Nothing is downloaded: a directory is read with
    ``local_files_only``.
    """
    if sum(x is not None for x in (model, hf_dir, hf_config)) != 1:
        raise InputError("give exactly one of model, hf_dir or hf_config (trace capture: --model, --hf or "
                         "--hf-config)")
    if model is not None:
        if model not in DECODERS:
            raise arg_error("model", f"unknown LLM decoder {model!r}{suggest(model, DECODERS.names())}")
        shape = DECODERS.get(model)
        if shape.moe:
            raise arg_error("model", f"{model} is a mixture of experts: shape-only (use run --network {model})")
    check_output_dir(Path(out), overwrite)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise InputError("trace capture needs torch: pip install 'sparsesim[capture]'") from None
    if model == TRAINED_RELU:
        check_budget(estimate_bytes(shape, spec, "grouped"), spec, model)
        return capture_trained_relu(Path(out), spec, overwrite=overwrite, progress=progress)
    if model is not None and model in PRETRAINED:
        check_budget(estimate_bytes(shape, spec, "repeated"), spec, model)
        return capture_pretrained(model, Path(out), spec, overwrite=overwrite, progress=progress)
    if model is not None:
        check_budget(estimate_bytes(shape, spec, "grouped"), spec, model)
        from sparsesim.workloads.capture.inference import capture_zoo_decoder  # torch: only once a capture runs

        return capture_zoo_decoder(shape, Path(out), spec, overwrite=overwrite, progress=progress)
    from sparsesim.workloads.capture.hf import capture_hf  # torch and transformers

    return capture_hf(Path(out), spec, hf_dir=hf_dir, hf_config=hf_config, overwrite=overwrite, progress=progress)


def corpus_prompt(tokenizer, spec: InferenceCapture, text=None):
    """``batch x prompt_len`` token ids of real text: row ``b`` is tokens ``[b P, (b+1) P)`` of the
    text (default: the built-in evaluation text), tokenized as the model's tokenizer does by default."""
    import torch

    from sparsesim.workloads.corpus import corpus_part

    part = corpus_part("eval") if text is None else text
    ids = tokenizer(part.text, return_tensors="pt").input_ids[0]
    need = spec.batch * spec.prompt_len
    if ids.numel() < need:
        raise arg_error("prompt_len", f"{part.name} has {ids.numel()} tokens; batch x prompt_len needs {need}")
    return ids[:need].reshape(spec.batch, spec.prompt_len).to(torch.long), part


TRAINED_RELU = "pydoc_relu_lm"
"""The zoo decoder captured with weights trained here (:func:`capture_trained_relu`)."""


def capture_trained_relu(out: Path, spec: InferenceCapture, *, overwrite: bool, progress: bool,
                         settings=None) -> Path:
    """Capture ``pydoc_relu_lm`` with its trained weights (``sparsesim study training-dynamics``' ReLU
    model, :func:`~sparsesim.studies.training_dynamics.trained_relu_decoder`: from the cache, or
    trained now, a few minutes, and cached), prompted with real text it was not trained on: the
    first ``prompt_len`` bytes of the corpus' held-out paragraphs, the same for every sequence.
    ``settings``: the training study's :class:`~sparsesim.studies.training_dynamics.Settings`
    (default: its defaults, the zoo entry's shape)."""
    import torch

    from sparsesim.studies import training_dynamics as td
    from sparsesim.workloads.capture.inference import run_inference

    settings_td = td.Settings() if settings is None else settings
    model = td.trained_relu_decoder(settings_td)
    _, held, sha = td.split_text()
    if len(held) < spec.prompt_len:
        raise arg_error("prompt_len", f"{TRAINED_RELU}'s held-out text has {len(held)} bytes, fewer than "
                                      f"{spec.prompt_len}")
    prompt = torch.tensor(list(held[:spec.prompt_len]), dtype=torch.long).unsqueeze(0).repeat(spec.batch, 1)

    def step(tokens, cache):
        cache = model.new_cache() if cache is None else cache
        return model(tokens, cache), cache

    shape = td.shape(settings_td, "relu")
    record = {"model": TRAINED_RELU, "source": "trained", "params": shape.params, "attention": "grouped",
                "mlp_act": "relu", "trained": {"study": "training-dynamics", "key": settings_td.key(),
                                               "steps": settings_td.steps, "text_sha256": sha},
                "prompt": {"name": "pydoc:eval held-out paragraphs", "bytes": spec.prompt_len},
                **spec.settings(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    return run_inference(model, step, shape.vocab, out, spec, record, overwrite=overwrite, progress=progress,
                         prompt=prompt)


def capture_pretrained(name: str, out: Path, spec: InferenceCapture, *, overwrite: bool, progress: bool) -> Path:
    """Capture a pretrained decoder (:mod:`.pretrained`) on real text: the prompt is the start of
    the built-in evaluation text (a trained model's activations on random tokens say little)."""
    source_file(name)  # one line if its package is missing, before torch loads
    from sparsesim.workloads.capture.hf import capture_hf_model
    from sparsesim.workloads.capture.pretrained import load_pretrained

    loaded = load_pretrained(name)
    prompt, part = corpus_prompt(loaded.tokenizer, spec)
    settings = {"source": "pretrained", "pretrained": loaded.record(), "prompt": part.record()}
    return capture_hf_model(loaded.model, name, out, spec, settings, overwrite=overwrite, progress=progress,
                            prompt=prompt)
