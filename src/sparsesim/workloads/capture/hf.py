"""Hugging Face causal LMs for LLM inference capture (torch and transformers only here).

A model comes from a local directory (``from_pretrained(dir, local_files_only=True)``,
nothing is downloaded) or is built with random weights from a config file
(``AutoConfig.from_dict`` of the JSON, then ``from_config``, seeded). Attention is forced to
``eager`` so the two attention matmuls run as ``torch.matmul`` calls the recorder sees
(fused SDPA kernels would hide them); eager attention repeats K/V per query head, so the
matmuls have ``batch * heads`` GEMMs (``attention="repeated"`` in
:mod:`sparsesim.workloads.llm_networks`). Ops are named by the model's module names
(``model.layers.0.mlp.down_proj``). Prefill asks for the last position's logits only
(``logits_to_keep=1``), as generation needs.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from torch import Tensor

from sparsesim.workloads.capture.inference import run_inference
from sparsesim.workloads.capture.inference_spec import InferenceCapture, check_budget, estimate_bytes
from sparsesim.core.errors import InputError, arg_error
from sparsesim.workloads.llm_networks import DecoderShape

_FFN = {"silu": "swiglu", "relu": "relu"}


def _transformers():
    try:
        import transformers
    except ImportError:
        raise InputError("capturing a Hugging Face model needs transformers: pip install 'sparsesim[hf]'") from None
    return transformers


def _first_line(exc: BaseException) -> str:
    """Library messages can span lines; the CLI prints one ``error:`` line."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return line if len(line) <= 200 else line[:200] + "..."


def decoder_shape(config, name: str) -> DecoderShape | None:
    """The :class:`DecoderShape` of a Llama-style Hugging Face config, or None if it is not one
    (then the size of a capture cannot be estimated)."""
    try:
        dim, heads = int(config.hidden_size), int(config.num_attention_heads)
        kv = int(getattr(config, "num_key_value_heads", None) or heads)
        head_dim = getattr(config, "head_dim", None) or dim // heads
        ffn = _FFN.get(str(getattr(config, "hidden_act", "")))
        if head_dim * heads != dim or ffn is None or getattr(config, "num_local_experts", None):
            return None
        return DecoderShape(name=name, summary="Hugging Face config", vocab=int(config.vocab_size), dim=dim,
                            layers=int(config.num_hidden_layers), heads=heads, kv_heads=kv,
                            ffn_hidden=int(config.intermediate_size), ffn=ffn,
                            tie_embeddings=bool(getattr(config, "tie_word_embeddings", False)))
    except (AttributeError, TypeError, ValueError, InputError):
        return None


def load_model(hf_dir: Path | str | None, hf_config: Path | str | None, seed: int):
    """``(model, name)``: a pretrained model from ``hf_dir`` or a random-init one from ``hf_config``."""
    tf = _transformers()
    if hf_dir is not None:
        path = Path(hf_dir)
        if not path.is_dir():
            raise arg_error("hf_dir", f"{path}: not a directory")
        if not (path / "config.json").is_file():
            raise arg_error("hf_dir", f"{path}: no config.json (expected a save_pretrained directory)")
        try:
            model = tf.AutoModelForCausalLM.from_pretrained(path, local_files_only=True, attn_implementation="eager")
        except (OSError, ValueError) as exc:
            raise arg_error("hf_dir", f"{path}: cannot load ({_first_line(exc)})") from None
        return model.float().eval(), path.name  # computed in fp32; dtype sets the storage
    path = Path(hf_config)
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise arg_error("hf_config", f"{path}: cannot read JSON ({_first_line(exc)})") from None
    if not isinstance(raw, dict) or "model_type" not in raw:
        raise arg_error("hf_config", f"{path}: expected a config object with a model_type")
    try:
        config = tf.AutoConfig.for_model(**raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise arg_error("hf_config", f"{path}: {_first_line(exc)}") from None
    config._attn_implementation = "eager"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = tf.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
        except ValueError as exc:
            raise arg_error("hf_config", f"{path}: {_first_line(exc)}") from None
    return model.float().eval(), path.stem


def capture_hf(out: Path, spec: InferenceCapture, *, hf_dir, hf_config, overwrite: bool, progress: bool) -> Path:
    """Load or build the Hugging Face model and capture its inference."""
    model, name = load_model(hf_dir, hf_config, spec.seed)
    return capture_hf_model(model, name, out, spec, {"source": "hf_dir" if hf_dir is not None else "hf_config"},
                            overwrite=overwrite, progress=progress)


def capture_hf_model(model, name: str, out: Path, spec: InferenceCapture, settings: dict, *, overwrite: bool,
                     progress: bool, prompt: Tensor | None = None) -> Path:
    """Capture the inference of a loaded Hugging Face causal LM ``model`` (fp32, eval mode, eager
    attention); ``settings`` adds to the recorded capture settings (``source`` at least);
    ``prompt`` the token ids (default: seeded random)."""
    shape = decoder_shape(model.config, name)
    check_budget(None if shape is None else estimate_bytes(shape, spec, "repeated"), spec, name)

    # transformers 5.x renamed past_key_values to cache (argument and output); accept both
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def step(tokens: Tensor, past):
        output = model(input_ids=tokens, use_cache=True, logits_to_keep=1, **{cache_arg: past})
        return output.logits[:, -1], getattr(output, cache_arg)

    settings = {"model": name, **settings,
                "params": sum(p.numel() for p in model.parameters()), "attention": "repeated",
                "mlp_act": str(getattr(model.config, "hidden_act", None)), **spec.settings(),
                "torch": torch.__version__, "transformers": _transformers().__version__,
                "threads": torch.get_num_threads()}
    return run_inference(model, step, int(model.config.vocab_size), out, spec, settings, overwrite=overwrite,
                         progress=progress, prompt=prompt)
