"""``sparsesim codesign --mode train``: what N:M sparse training costs the model, beside what the
training step gains on the hardware.

For each setting (``dense``, or ``nm:N:M`` with ``zero_skip`` beside it if wanted), a copy of the
pretrained decoder is fine-tuned for ``train_steps`` steps, each on the next ``prompt_len`` tokens of
the calibration text (never the evaluation text), with AdamW (``lr``, seed 0):

* ``dense``: plain fine-tuning, the baseline each setting's quality and speed are relative to;
* ``nm:N:M``: SAT's bidirectional weight pruning (BDWP, :mod:`sparsesim.workloads.capture.bdwp`):
  every Linear layer computes its forward with its dense weights pruned N:M along input features,
  its backward-data with a second N:M pruning along output features, and the optimizer updates
  the dense weights, as the replay's ``nm`` models the training step.

Then, on the fine-tuned weights:

1. **Quality**: perplexity and next-token agreement on the evaluation text, the model run with the
   setting's forward (every Linear weight pruned N:M: what inference with the trained sparse model
   computes), against the dense fine-tuned model.
2. **Trace**: one more training step captured from a copy of the fine-tuned model (on the next
   calibration tokens), so the trace's dense master weights are the very weights of the quality run.
3. **Replay** of that training step (forward, backward-data, backward-weight) on each preset.
4. **Mask check**: for every Linear op, a fingerprint (SHA-256) of its forward weight as the quality
   run pruned it equals that of the replay's pruning of the trace's recorded weight; a setting whose
   two differ is refused.
"""

from __future__ import annotations

import copy
import hashlib
import math
from pathlib import Path

import numpy as np

from sparsesim.core.errors import InputError, arg_error


def train_features(features: tuple):
    """The setting's N:M feature (or None); refuse what a training step with BDWP cannot apply."""
    nm = None
    for f in features:
        if f.kind == "nm":
            if f.mode != "prune":
                raise InputError("--sparsity: codesign prunes the model itself: nm mode must be prune")
            if not f.bidirectional:
                raise InputError("--sparsity: --mode train trains with BDWP (nm bidirectional=true)")
            nm = f
        elif f.kind != "zero_skip":
            raise InputError(f"--sparsity: --mode train applies N:M (with zero_skip); {f.kind} acts on inference")
    return nm


def check_train_args(train_steps, lr) -> None:
    """Refuse a bad ``train_steps`` or ``lr`` in one line, naming it."""
    if isinstance(train_steps, bool) or not isinstance(train_steps, int) or train_steps < 1:
        raise arg_error("train_steps", f"must be an integer >= 1, got {train_steps!r}")
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise arg_error("lr", f"must be a positive number, got {lr!r}")


def _lm_loss(output, inputs):
    """Next-token cross-entropy of a causal LM's output on its own input ids (``inputs``: ``1 x T``)."""
    import torch

    ids = inputs[0] if isinstance(inputs, tuple) else inputs
    logits = output.logits if hasattr(output, "logits") else output[0]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def fine_tune(model, nm, batches, lr: float):
    """``model`` trained in place on ``batches`` (AdamW, ``lr``), with BDWP N:M when ``nm`` is given."""
    import torch

    from sparsesim.workloads.capture import bdwp

    model.train()
    if nm is not None:
        bdwp.install(model, nm.n, nm.m)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    try:
        for ids in batches:
            opt.zero_grad(set_to_none=True)
            _lm_loss(model(input_ids=ids), ids).backward()
            opt.step()
    finally:
        if nm is not None:
            bdwp.remove(model)
        model.eval()
    return model


def _fingerprint(w: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(w, dtype=np.float32).tobytes()).hexdigest()


def weight_mask_check(model, nm, trace_dir: Path) -> dict:
    """Per Linear op of the trace's forward: the quality run's forward weight (the module's weight,
    pruned N:M as :class:`~.transform.ForwardTransform` prunes it) against the replay's (the trace's
    recorded weight, pruned by :func:`~sparsesim.hardware.kernels.nm_prune`), by SHA-256."""
    from sparsesim import api
    from sparsesim.hardware.kernels import nm_prune

    workload = api.load_trace(trace_dir).workload()
    source = workload.source
    modules = dict(model.named_modules())
    compared = 0
    for index, op in enumerate(workload.ops):
        if op.kind != "linear":
            continue
        name = op.name.split("@")[0]
        module = modules.get(name)
        if module is None or not hasattr(module, "weight"):
            continue
        tensors = source.tensors(index)
        recorded = tensors.get("master_weight")
        recorded = tensors.get("weight") if recorded is None else recorded
        mine = module.weight.detach().numpy().astype(np.float32)
        theirs = np.asarray(recorded, dtype=np.float32).reshape(mine.shape)
        if nm is not None:
            mine, theirs = nm_prune(np.ascontiguousarray(mine), nm.n, nm.m), nm_prune(np.ascontiguousarray(theirs),
                                                                                       nm.n, nm.m)
        if _fingerprint(mine) != _fingerprint(theirs):
            raise InputError(f"codesign: mask check failed: {op.name}'s forward weight differs between the quality "
                             "run and the replay")
        compared += 1
    if compared == 0:
        raise InputError("codesign: mask check: no Linear op of the training trace matches a module of the model")
    return {"ops_compared": compared, "max_abs_diff": 0.0}


def codesign_train(hf_model, tokenizer, model_record, parsed, *, accels, text, calib_text, prompt_len: int,
                   train_steps: int, lr: float, context: int, eval_tokens, dataflow: str, root: Path,
                   keep_traces: bool, progress) -> list[dict]:
    """The settings' rows of the ``--json`` document for ``--mode train`` (module docstring)."""
    import shutil
    import time

    import torch

    from sparsesim import api
    from sparsesim.quality.metrics import evaluate, token_ids, windows
    from sparsesim.quality.pipeline import Setting, _progress, setting_row
    from sparsesim.quality.transform import ForwardTransform
    from sparsesim.sparsity import cli_sparsity
    from sparsesim.workloads.capture.api import capture_model

    check_train_args(train_steps, lr)
    nms = {s.text: train_features(s.features) for s in parsed}
    train_ids = token_ids(tokenizer, calib_text.text)
    need = (train_steps + 1) * prompt_len
    if train_ids.numel() < need:
        raise arg_error("train_steps", f"{train_steps} steps of {prompt_len} tokens and the captured one need "
                                       f"{need} tokens; {calib_text.name} has {train_ids.numel()}")
    batches = [train_ids[i * prompt_len:(i + 1) * prompt_len].unsqueeze(0) for i in range(train_steps + 1)]
    eval_windows = windows(token_ids(tokenizer, text.text), context, eval_tokens)
    tokens = sum(w.shape[1] for w in eval_windows)
    start = time.perf_counter()
    pretrained = evaluate(hf_model, eval_windows)
    _progress(progress, f"pretrained: perplexity {pretrained.perplexity:.3f} over {pretrained.predictions} "
                        "predictions")
    results, dense_totals, dense_eval = [], {}, None
    for i, setting in enumerate([Setting("dense", ())] + [s for s in parsed if s.text != "dense"]):
        nm = nms.get(setting.text)
        torch.manual_seed(0)
        model = fine_tune(copy.deepcopy(hf_model), nm, batches[:train_steps], lr)
        with ForwardTransform(model, (nm,) if nm is not None else ()):
            ev = evaluate(model, eval_windows)
        if dense_eval is None:
            dense_eval = ev
        quality = {"metric": "perplexity", "value": ev.perplexity, "dense": dense_eval.perplexity, "tokens": tokens,
                   "predictions": ev.predictions, "loss_ratio": ev.perplexity / dense_eval.perplexity,
                   "next_token_agreement": ev.agreement(dense_eval), "pretrained": pretrained.perplexity,
                   "train_steps": train_steps, "train_tokens": train_steps * prompt_len, "lr": lr}
        trace_dir = root / f"setting{i}"
        capture_model(copy.deepcopy(model), batches[train_steps], out=trace_dir, mode="train", steps=1,
                      loss=_lm_loss, optimizer=lambda p: torch.optim.AdamW(p, lr=lr),
                      nm=None if nm is None else f"{nm.n}:{nm.m}", nm_mode="bdwp", seed=0,
                      name=model_record["model"], overwrite=True, progress=False)
        check = weight_mask_check(model, nm, trace_dir)
        _progress(progress, f"[{setting.text}] fine-tuned {train_steps} steps: perplexity {ev.perplexity:.3f}; "
                            f"captured {trace_dir.name} ({time.perf_counter() - start:.0f} s)")
        for accel in accels:
            res = api.simulate(api.trace(trace_dir), accel=accel, dataflow=dataflow,
                               sparsity=list(cli_sparsity(setting.text.split("+"))) if setting.features else [])
            results.append(setting_row(setting, accel, quality, res, check, dense_totals))
            total = results[-1]["total"]
            _progress(progress, f"[{setting.text}] training step on {accel}: {total['cycles']:,} cycles "
                                f"({time.perf_counter() - start:.0f} s)")
        if not keep_traces:
            shutil.rmtree(trace_dir, ignore_errors=True)
    return results
