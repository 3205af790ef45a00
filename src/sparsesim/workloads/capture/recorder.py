"""Recording real tensors from a PyTorch model into a trace (torch only here).

A :class:`~torch.overrides.TorchFunctionMode` intercepts every ``conv2d``, ``linear`` and
``matmul``/``bmm``/``mm`` call during the forward pass, whether it comes from an
``nn.Module`` or a functional call, and the BDWP layer calls of :mod:`.bdwp` (each once, with
the N:M forward weight W_fwd it computes with). For each call it

* clones the input and the weight (second operand) as the op consumes them, so an in-place
  op later in the graph (``ReLU(inplace=True)``, ``out += identity``) cannot alter them;
* registers a hook on the op's output tensor that receives dY in the backward pass. A hook
  registered before an in-place op on that tensor gets the gradient with respect to the
  value before it (PyTorch autograd docs, "Backward hooks execution"), i.e. the op's own
  output gradient; full backward module hooks are not used.

Functions that are GEMMs in disguise (``conv1d``, ``conv3d``, ``scaled_dot_product_attention``,
``nn.MultiheadAttention``, ``nn.LSTM``, ``einsum``...) are rewritten by :mod:`.decompose` into
recorded ``conv2d``/``linear``/``matmul`` calls. Every other torch function runs unrecorded,
and :class:`.coverage.MacCounter` counts any GEMM work inside it at the aten level, so the
manifest lists what the trace leaves out (``capture.coverage``).

Module forward hooks keep a stack of module names: a call is named after the module that
made it (``layer1.0.conv1``), or ``<module>.<kind><i>`` for functional calls inside a module
(``layers.0.attn.matmul0``). In a sequence model the t-th call of an op in a step is time
step t; elsewhere repeated calls get ``#k`` suffixes.

:func:`deterministic` fixes the seed, the number of intra-op threads and deterministic
kernels for a capture, so the same capture gives bit-identical tensors.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from sparsesim.workloads.capture import bdwp
from sparsesim.workloads.capture import progress as _progress
from sparsesim.workloads.capture.coverage import RECORDED, MacCounter, coverage_summary
from sparsesim.workloads.capture.decompose import DECOMPOSITIONS, NOT_LOWERED
from sparsesim.core.errors import InputError, arg_error
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Conv2d, Linear, Matmul, Op
from sparsesim.workloads.trace.format import Operand
from sparsesim.workloads.trace.writer import TraceWriter

_KINDS: dict[object, str] = {
    torch.conv2d: "conv2d",  # F.conv2d is torch.conv2d
    F.linear: "linear",
    torch.matmul: "matmul", torch.Tensor.matmul: "matmul",  # `a @ b` dispatches as Tensor.matmul
    torch.bmm: "matmul", torch.Tensor.bmm: "matmul",
    torch.mm: "matmul", torch.Tensor.mm: "matmul",
    **bdwp.FUNCTIONS,  # their `weight` is W_fwd, pruned from the dense parameter passed as `master`
}
_OWN_KIND = {nn.Conv2d: "conv2d", nn.Linear: "linear", nn.Conv1d: "conv1d", nn.Conv3d: "conv3d",
             nn.ConvTranspose2d: "conv_transpose2d", nn.MultiheadAttention: "mha", nn.LSTM: "lstm", nn.GRU: "gru",
             nn.RNN: "rnn"}
"""Modules whose own op takes the module's name (the label of a decomposed call for conv1d/conv3d)."""


def _function_name(func) -> str:
    """``torch.nn.functional.multi_head_attention_forward``, ``torch.conv_transpose2d``: for the skipped-work list."""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    for hidden, shown in (("_VariableFunctionsClass.", "torch."), ("_TensorBase.", "Tensor."),
                          ("TensorBase.", "Tensor.")):
        if name.startswith(hidden):
            return shown + name[len(hidden):]
    module = getattr(func, "__module__", None)
    return f"{module}.{name}" if module else name


def _numpy(t: Tensor, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 copy detached from autograd and from later in-place changes."""
    return t.detach().to(torch.float32, copy=True).reshape(shape).numpy()


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv(name: str, args: tuple, kwargs: dict) -> tuple[Op, Tensor, Tensor]:
    """Normalise a ``conv2d`` call to a :class:`Conv2d` op and its (N, C, H, W) input and weight."""
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    call = dict(zip(names, (None, None, None, 1, 0, 1, 1)))
    call.update(zip(names, args))
    call.update(kwargs)
    x, w = call["input"], call["weight"]
    if x.dim() == 3:  # unbatched
        x = x.unsqueeze(0)
    dilation = _pair(call["dilation"])
    padding = call["padding"]
    if isinstance(padding, str):
        total = [0, 0] if padding == "valid" else [d * (k - 1) for d, k in zip(dilation, w.shape[2:])]
        before = [t // 2 for t in total]
        if any(t % 2 for t in total):
            # 'same' with an even filter pads one more at the bottom/right: record that input.
            x = F.pad(x, (before[1], total[1] - before[1], before[0], total[0] - before[0]))
            before = [0, 0]
        padding = before
    pad, stride = _pair(padding), _pair(call["stride"])
    op = Conv2d(name=name, batch=x.shape[0], in_channels=x.shape[1], out_channels=w.shape[0], in_h=x.shape[2],
                in_w=x.shape[3], kernel_h=w.shape[2], kernel_w=w.shape[3], stride_h=stride[0], stride_w=stride[1],
                pad_h=pad[0], pad_w=pad[1], dilation_h=dilation[0], dilation_w=dilation[1], groups=int(call["groups"]))
    return op, x, w


def _linear(name: str, args: tuple, kwargs: dict) -> tuple[Op, Tensor, Tensor]:
    x = args[0] if args else kwargs["input"]
    w = args[1] if len(args) > 1 else kwargs["weight"]
    op = Linear(name=name, tokens=x.numel() // x.shape[-1], in_features=w.shape[1], out_features=w.shape[0])
    return op, x, w


def _matmul(name: str, args: tuple, kwargs: dict) -> tuple[Op, Tensor, Tensor]:
    a = args[0] if args else kwargs["input"]
    b = args[1] if len(args) > 1 else next(v for k, v in kwargs.items() if k in ("other", "mat2"))
    a = a.unsqueeze(0) if a.dim() == 1 else a  # a vector is a 1-row matrix
    b = b.unsqueeze(-1) if b.dim() == 1 else b
    lead = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    (m, k), n = a.shape[-2:], b.shape[-1]
    a, b = a.expand(*lead, m, k), b.expand(*lead, k, n)
    return Matmul(name=name, batch=max(1, int(np.prod(lead))), m=m, n=n, k=k), a, b


_LOWER = {"conv2d": _conv, "linear": _linear, "matmul": _matmul}


@dataclass(slots=True)
class _Call:
    """One intercepted op call within the current step."""

    op: Op
    base: str  # name without time step / repeat suffix
    occurrence: int  # how many earlier calls in this step had the same base name
    tensors: dict[Operand, str]
    phases: list[Phase]
    grad: np.ndarray | None = None


@dataclass(slots=True)
class _Frame:
    name: str
    module: nn.Module | None
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Recorder(TorchFunctionMode):
    """Intercepts the forward ops of ``model`` and writes their tensors to ``writer``, step by step."""

    def __init__(self, model: nn.Module, writer: TraceWriter, *, train: bool, sequence: bool) -> None:
        super().__init__()
        self.writer, self.train, self.sequence = writer, train, sequence
        self.stack: list[_Frame] = []
        self.calls: list[_Call] = []
        self.occurrences: dict[str, int] = defaultdict(int)
        self.weights: dict[tuple[int, int], str] = {}  # (id(param), version) -> tensor name, this step
        self.step = 0
        self.counter = MacCounter()  # active (``with recorder.counter``) around each captured forward
        self.recorded_fwd_macs = 0
        self.handles = []
        for mname, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._enter(mname)))
            self.handles.append(module.register_forward_hook(self._leave, always_call=True))

    def remove_hooks(self) -> None:
        for h in self.handles:
            h.remove()

    def _enter(self, mname: str):
        def hook(module, args):
            self.stack.append(_Frame(mname, module))
        return hook

    def _leave(self, module, args, output):
        self.stack.pop()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = _KINDS.get(func)
        decomposition = None if kind else DECOMPOSITIONS.get(func)
        if decomposition is not None:
            result = self.counter.attribute(RECORDED, lambda: decomposition.run(
                self.record, self._base(decomposition.label), args, kwargs))
            if result is not NOT_LOWERED:
                return result
        if kind is None:  # not a GEMM the recorder stores: any GEMM work inside is counted as skipped
            owner = (self.stack[-1].name if self.stack else "", _function_name(func))
            return self.counter.attribute(owner, lambda: func(*args, **kwargs))
        return self.counter.attribute(RECORDED, lambda: self.record(kind, func, self._base(kind), args, kwargs))

    def _base(self, label: str) -> str:
        """The op name of the next ``label`` call: the module's own name for its own op, else ``module.label<i>``."""
        if not self.stack:
            self.stack.append(_Frame("", None))  # functional calls outside any module share one frame
        frame = self.stack[-1]
        own = any(isinstance(frame.module, cls) and k == label for cls, k in _OWN_KIND.items())
        if own and frame.counts["own"] == 0:
            frame.counts["own"] = 1
            return frame.name
        index = frame.counts[label]
        frame.counts[label] += 1
        return f"{frame.name}.{label}{index}" if frame.name else f"{label}{index}"

    def record(self, kind: str, func, base: str, args: tuple, kwargs: dict) -> Tensor:
        """Run one ``kind`` GEMM call named ``base``, store its operands and hook its output gradient."""
        if not self.wants(base):  # outside --layers: run, do not store
            return func(*args, **kwargs)
        occurrence = self.occurrences[base]
        self.occurrences[base] += 1
        try:
            op, x, w = _LOWER[kind](base, args, kwargs)
        except InputError as exc:
            raise InputError(f"{base}: cannot record this {kind} call ({exc})") from None
        param = kwargs["master"] if func in bdwp.FUNCTIONS else w  # the tensor that gets dW
        prefix = f"s{self.step}/{base}#{occurrence}"
        tensors = {Operand.INPUT: self.writer.add_tensor(f"{prefix}/input", _numpy(x, op.input_shape)),
                   Operand.WEIGHT: self._weight(w, param, op, prefix)}
        if func in bdwp.FUNCTIONS:  # replay regenerates both N:M copies from the dense master
            tensors[Operand.MASTER_WEIGHT] = self._weight(param, param, op, prefix, role="master_weight")
        out = func(*args, **kwargs)
        call = _Call(op, base, occurrence, tensors, [Phase.FWD])
        self.recorded_fwd_macs += op.gemm(Phase.FWD).macs
        if self.train and out.requires_grad:
            if x.requires_grad:
                call.phases.append(Phase.BWD_DATA)
            if param.requires_grad:
                call.phases.append(Phase.BWD_WEIGHT)

            def keep_grad(grad: Tensor) -> None:
                call.grad = _numpy(grad, op.output_shape)
            out.register_hook(keep_grad)
        self.calls.append(call)
        return out

    def wants(self, name: str) -> bool:
        """Whether to record the op called ``name`` (all here; a subclass may record a subset)."""
        return True

    def _weight(self, w: Tensor, param: Tensor, op: Op, prefix: str, role: str = "weight") -> str:
        """Store ``w`` once per step even if several calls use it (a recurrent cell).

        ``param`` is the parameter ``w`` is (dense) or was pruned from (BDWP's W_fwd, a
        function of it): an unchanged parameter gives the same stored tensor.
        """
        key = (id(param), param._version, role) if isinstance(param, nn.Parameter) else None
        if key in self.weights:
            return self.weights[key]
        name = self.writer.add_tensor(f"{prefix}/{role}", _numpy(w, op.weight_shape))
        if key is not None:
            self.weights[key] = name
        return name

    def finish_step(self) -> None:
        """Write this step's ops (gradients have arrived by now) and reset per-step state."""
        for call in self.calls:
            phases = call.phases if call.grad is not None else [Phase.FWD]  # output not used by the loss
            if call.grad is not None:
                call.tensors[Operand.GRAD_OUTPUT] = self.writer.add_tensor(
                    f"s{self.step}/{call.base}#{call.occurrence}/grad_output", call.grad)
            repeated = self.occurrences[call.base] > 1
            if self.sequence:
                name, time_step = call.base, (call.occurrence if repeated else None)
            else:
                name, time_step = (f"{call.base}#{call.occurrence}" if call.occurrence else call.base), None
            op = call.op if name == call.op.name else dataclasses.replace(call.op, name=name)
            self.writer.add_op(op, tensors=call.tensors, phases=tuple(phases), step=self.step, time_step=time_step)
        self.calls, self.weights, self.stack = [], {}, []
        self.occurrences.clear()
        self.step += 1


def _default_loss(output, target):
    if target is None:
        return output.float().square().mean()
    return F.cross_entropy(output, target)


def capture_module(model: nn.Module, batches: Sequence[tuple], out: Path | str, *,
                   loss_fn: Callable | None = None, optimizer: torch.optim.Optimizer | None = None,
                   mode: str = "train", dtype: str = "fp32", sequence: bool = False, settings: dict | None = None,
                   overwrite: bool = False, progress: bool = True,
                   after_step: Callable[[], None] | None = None, strict: bool = False) -> Path:
    """Run ``model`` over ``batches`` and write a trace of every conv2d, linear and matmul to ``out``.

    Each batch is ``(inputs, target)``: ``inputs`` a tensor or a tuple of tensors passed
    positionally, ``target`` anything ``loss_fn(output, target)`` takes (default: cross
    entropy, or the mean square of the output when ``target`` is None). ``train`` mode
    runs forward and backward per batch and, if ``optimizer`` is given, an update followed by
    ``after_step()``; ``infer`` runs forward under ``torch.no_grad``. A ``loss_fn`` with a
    ``describe()`` method has its answer recorded as the ``loss`` setting. The manifest's
    ``capture.coverage`` says how much forward GEMM work the ops hold (:mod:`.coverage`);
    with ``strict`` any work left out is an error and nothing is written. Returns the trace path.
    """
    if mode not in ("train", "infer"):
        raise InputError(f"mode: unknown mode {mode!r} (choose from train, infer)")
    loss_fn = loss_fn or _default_loss
    settings = {**(settings or {}), "mode": mode, "dtype": dtype, "steps": len(batches), "sequence": sequence,
                "torch": torch.__version__, "threads": torch.get_num_threads(),
                "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}
    train = mode == "train"
    with TraceWriter(out, capture=settings, storage_dtype=dtype, overwrite=overwrite) as writer:
        recorder = Recorder(model, writer, train=train, sequence=sequence)
        try:
            label = f"capture {settings.get('model', type(model).__name__)}"
            for inputs, target in _progress.steps(batches, desc=label, total=len(batches), enabled=progress):
                inputs = inputs if isinstance(inputs, tuple) else (inputs,)
                with torch.set_grad_enabled(train), recorder, recorder.counter:
                    output = model(*inputs)
                    loss = loss_fn(output, target) if train else None
                if train:
                    loss.backward()
                recorder.finish_step()
                if train and optimizer is not None:
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    if after_step is not None:
                        after_step()
        finally:
            recorder.remove_hooks()
        # known only now: how much of the forward GEMM work the ops hold (format.py, "coverage")
        coverage = writer.capture["coverage"] = coverage_summary(recorder.counter, recorder.recorded_fwd_macs,
                                                                 len(batches))
        if strict and coverage["skipped"]:
            first = coverage["skipped"][0]
            raise arg_error("strict", f"{first['module']}: {first['function']} does {first['macs_fwd']:,} forward "
                                      f"MACs that the recorder cannot lower ({len(coverage['skipped'])} such call "
                                      "site(s); not strict, they are listed in the trace as skipped)")
        if train and callable(getattr(loss_fn, "describe", None)):  # a loss chosen from the output says which
            writer.capture["loss"] = loss_fn.describe()
        _progress.stage(f"{label}: writing {out}", progress)
    return Path(out)


@torch.no_grad()
def prune_nm_(model: nn.Module, n: int, m: int) -> list[str]:
    """Keep the ``n`` largest-magnitude weights in every ``m`` consecutive input features.

    Applies to every ``nn.Conv2d`` and ``nn.Linear``; "input features" is the reduction of
    the forward GEMM (``C/g*R*S`` in the im2col order of :func:`sparsesim.workloads.ops.im2col`). A
    ragged last group keeps at most ``n`` too; ties go to the lower index
    (:func:`.bdwp.nm_keep`). This is the ``nm_mode="forward"`` capture: the weights themselves
    become N:M sparse, unlike BDWP (:mod:`.bdwp`), which keeps them dense. Returns the pruned
    modules' names.
    """
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        rows = module.weight.reshape(module.weight.shape[0], -1)
        module.weight.mul_(bdwp.nm_keep(rows, n, m).reshape(module.weight.shape))
        names.append(name)
    return names


@contextmanager
def deterministic(seed: int, threads: int = 1):
    """Seed torch, use ``threads`` intra-op threads and deterministic kernels; restore the caller's state after.

    The thread count is part of the result: a reduction split over more threads adds in a
    different order, so captured tensors (and every cycle count replayed from them) differ
    in their last bits between thread counts. One thread is also the fastest choice on a
    small, shared machine. Kernels without a deterministic implementation warn instead of
    failing (``warn_only``), so a user's model still captures.
    """
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    previous_threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
            torch.set_num_threads(previous_threads)


def train_and_capture(factory: Callable, out: Path, *, settings: dict, sequence: bool,
                      nm: tuple[int, int] | None, nm_mode: str, overwrite: bool, progress: bool) -> Path:
    """Build a zoo model with ``factory``, train it briefly on its task, then capture it.

    With ``nm``, warm-up and capture train N:M sparse: ``nm_mode="bdwp"`` with bidirectional
    weight pruning of dense weights (:mod:`.bdwp`), ``"forward"`` by pruning the weights
    themselves along their input features after every update (:func:`prune_nm_`).
    """
    if nm_mode not in ("bdwp", "forward"):
        raise InputError(f"nm_mode: unknown mode {nm_mode!r} (choose from bdwp, forward)")
    seed, batch, steps = settings["seed"], settings["batch"], settings["steps"]
    with deterministic(seed, settings.get("threads", 1)):
        _progress.stage(f"capture {settings['model']}: building the model", progress)
        net = factory(torch.Generator().manual_seed(seed))
        model = net.model
        gen = torch.Generator().manual_seed(seed + 1)
        optimizer = net.make_optimizer()
        after_step = (lambda: prune_nm_(model, *nm)) if nm and nm_mode == "forward" else None
        if after_step:
            after_step()
        elif nm:
            bdwp.install(model, *nm)
        model.train()
        for _ in _progress.steps(range(settings["warmup_steps"]), desc=f"warm-up {settings['model']}",
                                 total=settings["warmup_steps"], enabled=progress):
            inputs, target = net.task.batch(batch, gen)
            F.cross_entropy(model(*inputs), target).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if after_step:
                after_step()
        if settings["mode"] == "infer":
            model.eval()
        batches = [net.task.batch(batch, gen) for _ in range(steps)]
        return capture_module(model, batches, out, optimizer=optimizer, mode=settings["mode"],
                              dtype=settings["dtype"], sequence=sequence, settings=settings, overwrite=overwrite,
                              progress=progress, after_step=after_step)
