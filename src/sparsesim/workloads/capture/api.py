"""Capturing the user's own PyTorch model: :func:`capture_model` (Python) and :func:`capture_user_model` (CLI).

``sparsesim trace capture --model FILE.py:NAME`` loads ``NAME`` (:mod:`.user_model`), builds
it under the seed and calls the same code as :func:`capture_model`, so the CLI and Python
give identical traces for the same model, inputs and options. Options and their errors
name the arguments (``steps: must be a positive integer, got 0``); the CLI names its flags
instead (``--steps``, see :class:`~sparsesim.core.errors.InputError`).

What a capture does (every choice is recorded in the manifest's ``capture`` settings):

* **threads and determinism**: torch runs with ``threads`` intra-op threads (default 1) and
  deterministic kernels, seeded with ``seed``; the caller's settings are restored after.
* **inputs**: given tensors, or random ones drawn from ``torch.Generator().manual_seed(seed)``,
  batch after batch (warm-up batches first): ``torch.randn((batch, *input_shape))`` for
  ``input_dtype="float"``, ``torch.randint(vocab, (batch, *input_shape))`` for ``"long"``.
* **loss** (``mode="train"``): ``loss(output, inputs)`` if given; else cross-entropy against
  random class targets (drawn from a second generator seeded ``seed + 1``) when the output
  is ``[batch, classes]``, else the mean of the squared output.
* **optimizer**: ``optimizer(parameters)`` if given, else SGD (lr 0.01, momentum 0.9); it
  updates the model after every warm-up and every captured training step.
* **N:M**: ``nm="2:4"`` trains N:M sparse, as for zoo models (``nm_mode`` ``bdwp`` or
  ``forward``; only ``nn.Conv2d`` and ``nn.Linear`` layers are pruned).

The model is trained in place by warm-up and training steps (pass a copy to keep yours);
BDWP's forward replacement is removed again afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path

from sparsesim.workloads.capture.user_model import UserModel, load_user_model, parse_model_ref
from sparsesim.workloads.capture.zoo import NM_MODES, check_common, check_positive, parse_nm
from sparsesim.core.errors import InputError, arg_error, field_error
from sparsesim.workloads.trace.writer import check_output_dir

INPUT_DTYPES = ("float", "long")
DEFAULT_LR = 0.01
DEFAULT_MOMENTUM = 0.9


def parse_shape(text: str | Sequence[int] | None, arg: str = "input_shape") -> tuple[int, ...] | None:
    """``"3,32,32"`` (or a sequence of ints) -> ``(3, 32, 32)``; every entry a positive integer."""
    if text is None:
        return None
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        shape = tuple(int(p) for p in parts if not isinstance(p, bool))
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != len(parts) or not shape or min(shape) < 1:
        raise arg_error(arg, f"expected positive integers separated by commas (one sample, no batch), got {text!r}")
    return shape


def _torch():
    try:
        import torch
    except ImportError:
        raise InputError("trace capture needs torch: pip install 'sparsesim[capture]'") from None
    return torch


@contextlib.contextmanager
def _users_code(label: str):
    """Turn an exception from the model's forward, loss or optimizer into one ``model`` error line."""
    try:
        yield
    except InputError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        message = (str(exc).strip().splitlines() or [""])[0]
        raise arg_error("model", f"{label} raised {type(exc).__name__}" + (f": {message}" if message else "")
                        + " (check the input shape, input dtype and batch)") from None


class _Batches:
    """The batch of every step: given batches in turn, or drawn from the seeded generator."""

    def __init__(self, torch, inputs, *, batch: int, input_shape, input_dtype: str, vocab, seed: int, label: str):
        self.torch, self.label = torch, label
        self.generator = torch.Generator().manual_seed(seed)
        self.fixed: list[tuple] | None = None
        self.draw: Callable | None = None
        if callable(inputs) and not isinstance(inputs, torch.Tensor):
            self.draw, self.description = (lambda: inputs(batch, self.generator)), "inputs(batch_size, generator)"
        elif inputs is not None:
            batches = inputs if isinstance(inputs, list) else [inputs]
            if not batches:
                raise field_error("inputs", "an empty list of batches")
            self.fixed = [self._as_tuple(b, f"inputs[{i}]") for i, b in enumerate(batches)]
            self.description = f"{len(self.fixed)} given batch{'es' if len(self.fixed) > 1 else ''}"
        elif input_dtype == "long":
            size = (batch, *input_shape)
            self.draw = lambda: torch.randint(vocab, size, generator=self.generator)
            self.description = f"random token ids below {vocab}, shape {list(size)}"
        else:
            size = (batch, *input_shape)
            self.draw = lambda: torch.randn(size, generator=self.generator)
            self.description = f"random normal, shape {list(size)}"

    def _as_tuple(self, b, where: str) -> tuple:
        b = b if isinstance(b, tuple) else (b,)
        if not b or not all(isinstance(t, self.torch.Tensor) for t in b):
            raise field_error(where, "a batch is a tensor or a tuple of tensors (the model's positional inputs)")
        return b

    def next(self, index: int) -> tuple:
        """The positional inputs of step ``index`` (fixed batches cycle; drawn ones are fresh)."""
        if self.fixed is not None:
            return self.fixed[index % len(self.fixed)]
        with _users_code(f"{self.label}: inputs(batch_size, generator)"):
            return self._as_tuple(self.draw(), "inputs(batch_size, generator)")


class _Loss:
    """The training loss: the user's ``loss(output, inputs)``, or the default chosen from the output's shape."""

    def __init__(self, torch, custom: Callable | None, seed: int, label: str):
        self.torch, self.custom, self.label = torch, custom, label
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.used: list[str] = []

    def __call__(self, output, inputs: tuple):
        torch = self.torch
        if self.custom is not None:
            with _users_code(f"{self.label}: loss(output, inputs)"):
                loss = self.custom(output, inputs)
            kind = "loss(output, inputs)"
        else:
            if not isinstance(output, torch.Tensor) or not output.is_floating_point():
                got = type(output).__name__ if not isinstance(output, torch.Tensor) else f"a {output.dtype} tensor"
                raise arg_error("model", f"{self.label}: the default loss needs one floating-point tensor as the "
                                             f"model's output, got {got}; give a loss (a dict with 'loss')")
            rows = inputs[0].shape[0] if inputs[0].dim() else 1
            if output.dim() == 2 and output.shape[0] == rows and output.shape[1] > 1:
                target = torch.randint(output.shape[1], (rows,), generator=self.generator)
                loss, kind = torch.nn.functional.cross_entropy(output, target), \
                    f"cross_entropy against random targets of {output.shape[1]} classes"
            else:
                loss, kind = output.float().square().mean(), "mean of the squared output"
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise arg_error("model", f"{self.label}: the loss must be a scalar tensor, got {type(loss).__name__}")
        if not loss.requires_grad:
            raise arg_error("mode", f"train: {self.label}'s loss does not depend on any trainable parameter "
                                    "(capture in infer mode)")
        if kind not in self.used:
            self.used.append(kind)
        return loss

    def describe(self) -> str:
        return "; ".join(self.used)


def _optimizer(torch, model, optimizer, label: str):
    if optimizer is None:
        return (torch.optim.SGD(model.parameters(), lr=DEFAULT_LR, momentum=DEFAULT_MOMENTUM),
                f"SGD(lr={DEFAULT_LR}, momentum={DEFAULT_MOMENTUM})")
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer, type(optimizer).__name__
    with _users_code(f"{label}: optimizer(parameters)"):
        made = optimizer(model.parameters())
    if not isinstance(made, torch.optim.Optimizer):
        raise arg_error("model", f"{label}: optimizer(parameters) returned {type(made).__name__}, "
                                     "not a torch optimizer")
    return made, type(made).__name__


def capture_model(model, inputs=None, *, out: Path | str, mode: str = "train", steps: int | None = None,
                  batch: int = 8, input_shape: str | Sequence[int] | None = None, input_dtype: str = "float",
                  vocab: int | None = None, loss: Callable | None = None, optimizer=None, warmup_steps: int = 0,
                  nm: str | None = None, nm_mode: str = "bdwp", dtype: str = "fp32", seed: int = 0,
                  threads: int = 1, sequence: bool = False, name: str | None = None, strict: bool = False,
                  overwrite: bool = False, progress: bool = True) -> Path:
    """Capture a trace of ``model`` (an ``nn.Module``) at ``out``; returns the trace path.

    ``inputs`` is one batch (a tensor, or a tuple of the model's positional inputs), a
    list of batches (used in turn, cycling), a callable ``inputs(batch_size, generator)``
    returning one batch, or ``None`` to draw random ones of ``input_shape`` (one sample,
    e.g. ``(3, 32, 32)``; ``batch`` is prepended) as floats or, with ``input_dtype="long"``,
    token ids below ``vocab``. ``steps`` captured steps (default: one per given batch, else
    1) follow ``warmup_steps`` training steps. ``mode="train"`` records forward, backward
    and update, with every op's input, weight and output gradient; ``"infer"`` forward
    only (model in eval mode). ``loss(output, inputs)`` and ``optimizer(parameters)`` (or an
    optimizer instance) replace the defaults (see the module docstring). ``sequence=True``
    records the t-th call of a layer within a step as time step t (for delta replay).
    ``name`` labels the model in the manifest (default its class name). Ops the recorder
    does not lower are listed with their MACs in ``capture.coverage`` (with ``strict``,
    they are an error and nothing is written). Needs torch.
    """
    torch = _torch()
    if not isinstance(model, torch.nn.Module):
        if isinstance(model, str):
            raise field_error("model", f"{model!r} is a name: use capture_zoo({model!r}, ...) for zoo models, "
                                       "or pass an nn.Module")
        raise field_error("model", f"expected an nn.Module, got {type(model).__name__}")
    user = UserModel(model=model, inputs=inputs if callable(inputs) and not isinstance(inputs, torch.Tensor)
                     else None, loss=loss, optimizer=optimizer)
    given = None if user.inputs is not None else inputs
    return _capture(user, given, out=Path(out), label=name or type(model).__name__, recorded={}, mode=mode,
                    steps=steps, batch=batch, input_shape=input_shape, input_dtype=input_dtype, vocab=vocab,
                    warmup_steps=warmup_steps, nm=nm, nm_mode=nm_mode, dtype=dtype, seed=seed, threads=threads,
                    sequence=sequence, strict=strict, overwrite=overwrite, progress=progress)


def capture_user_model(ref: str, *, out: Path | str, mode: str = "train", steps: int = 1, batch: int = 8,
                       input_shape: str | Sequence[int] | None = None, input_dtype: str = "float",
                       vocab: int | None = None, warmup_steps: int = 0, nm: str | None = None,
                       nm_mode: str = "bdwp", dtype: str = "fp32", seed: int = 0, threads: int = 1,
                       sequence: bool = False, strict: bool = False, overwrite: bool = False,
                       progress: bool = True) -> Path:
    """``trace capture --model FILE.py:NAME|package.module:NAME``: load ``NAME``, build it seeded, capture it.

    ``NAME`` is built under ``torch.manual_seed(seed)`` with ``threads`` threads, then
    captured exactly as :func:`capture_model` would (its ``inputs``, ``loss`` and
    ``optimizer`` from ``NAME``'s dict if it returns one).
    """
    model_ref = parse_model_ref(ref)
    if model_ref is None:
        raise arg_error("model", f"expected FILE.py:NAME or package.module:NAME, got {ref!r}")
    _check(mode=mode, steps=steps, batch=batch, input_shape=input_shape, input_dtype=input_dtype, vocab=vocab,
           warmup_steps=warmup_steps, nm=nm, nm_mode=nm_mode, dtype=dtype, threads=threads, given=False)
    check_output_dir(Path(out), overwrite)
    _torch()  # the install hint before the user's file imports torch
    from sparsesim.workloads.capture import progress as _progress
    from sparsesim.workloads.capture.recorder import deterministic

    _progress.stage(f"capture {model_ref}: building the model", progress)
    with deterministic(seed, threads):
        user = load_user_model(model_ref)
    if input_shape is None and user.inputs is None:
        raise arg_error("input_shape", f"required: {model_ref.name} returns no 'inputs' to draw batches with")
    return _capture(user, None, out=Path(out), label=model_ref.name, recorded={"model": str(model_ref)}, mode=mode,
                    steps=steps, batch=batch, input_shape=input_shape, input_dtype=input_dtype, vocab=vocab,
                    warmup_steps=warmup_steps, nm=nm, nm_mode=nm_mode, dtype=dtype, seed=seed, threads=threads,
                    sequence=sequence, strict=strict, overwrite=overwrite, progress=progress)


def _check(*, mode, steps, batch, input_shape, input_dtype, vocab, warmup_steps, nm, nm_mode, dtype, threads,
           given: bool) -> None:
    """Every option, before torch loads or anything runs; errors name the arguments."""
    check_common(steps=1 if steps is None else steps, batch=batch, mode=mode, dtype=dtype, nm=nm, nm_mode=nm_mode,
                 threads=threads)
    check_positive("warmup_steps", warmup_steps, minimum=0)
    if input_dtype not in INPUT_DTYPES:
        raise arg_error("input_dtype", f"unknown {input_dtype!r} (choose from {', '.join(INPUT_DTYPES)})")
    if given and input_shape is not None:
        raise arg_error("input_shape", "not with explicit inputs (the shape is theirs)")
    parse_shape(input_shape)
    if input_dtype == "long" and not given:
        if vocab is None:
            raise arg_error("vocab", "required with input dtype long (token ids are drawn below it)")
        check_positive("vocab", vocab)
    elif vocab is not None and input_dtype != "long":
        raise arg_error("vocab", "only with input dtype long (token ids)")


def _capture(user: UserModel, given, *, out: Path, label: str, recorded: dict, mode: str, steps: int | None,
             batch: int, input_shape, input_dtype: str, vocab, warmup_steps: int, nm, nm_mode: str, dtype: str,
             seed: int, threads: int, sequence: bool, strict: bool, overwrite: bool, progress: bool) -> Path:
    """The one capture path of :func:`capture_model` and :func:`capture_user_model`."""
    _check(mode=mode, steps=steps, batch=batch, input_shape=input_shape, input_dtype=input_dtype, vocab=vocab,
           warmup_steps=warmup_steps, nm=nm, nm_mode=nm_mode, dtype=dtype, threads=threads,
           given=given is not None or user.inputs is not None)
    check_output_dir(out, overwrite)
    torch = _torch()
    from sparsesim.workloads.capture import bdwp
    from sparsesim.workloads.capture import progress as _progress
    from sparsesim.workloads.capture.recorder import capture_module, deterministic, prune_nm_

    shape = parse_shape(input_shape)
    if given is None and user.inputs is None and shape is None:
        raise arg_error("input_shape", "required when no inputs are given")
    nm_pair = parse_nm(nm)
    model = user.model
    with deterministic(seed, threads):
        batches = _Batches(torch, user.inputs or given, batch=batch, input_shape=shape, input_dtype=input_dtype,
                           vocab=vocab, seed=seed, label=label)
        if steps is None:
            steps = len(batches.fixed) if batches.fixed is not None else 1
        loss = _Loss(torch, user.loss, seed, label)
        optimizer, optimizer_text = _optimizer(torch, model, user.optimizer, label)
        after_step = (lambda: prune_nm_(model, *nm_pair)) if nm_pair and nm_mode == "forward" else None
        installed = []
        try:
            if after_step:
                after_step()
            elif nm_pair:
                installed = bdwp.install(model, *nm_pair)
            model.train()
            for i in _progress.steps(range(warmup_steps), desc=f"warm-up {label}", total=warmup_steps,
                                     enabled=progress):
                inputs = batches.next(i)
                with _users_code(f"{label}: the warm-up step"):
                    loss(model(*inputs), inputs).backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                if after_step:
                    after_step()
            if mode == "infer":
                model.eval()
            captured = [(inputs, inputs) for inputs in (batches.next(j) for j in range(steps))]
            settings = {"model": label, **recorded, "input": batches.description, "batch": batch,
                        "input_shape": None if shape is None else list(shape), "input_dtype": input_dtype,
                        "vocab": vocab, "seed": seed, "warmup_steps": warmup_steps,
                        "optimizer": optimizer_text if mode == "train" or warmup_steps else None,
                        "loss": "custom loss(output, inputs)" if user.loss else "default",
                        "nm": None if nm_pair is None else f"{nm_pair[0]}:{nm_pair[1]}",
                        "nm_mode": None if nm_pair is None else nm_mode,
                        "nm_layers": len(installed) if installed else None}
            with _users_code(f"{label}: the captured step"):
                return capture_module(model, captured, out, loss_fn=loss, optimizer=optimizer, mode=mode, dtype=dtype,
                                      sequence=sequence, settings=settings, overwrite=overwrite, progress=progress,
                                      after_step=after_step, strict=strict)
        finally:
            if installed:
                bdwp.remove(model)


__all__ = ["INPUT_DTYPES", "NM_MODES", "capture_model", "capture_user_model", "parse_shape"]
