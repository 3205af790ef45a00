"""The ``sparsesim trace`` command: capture, info, validate, import and synth.

:func:`add_trace_commands` adds it to the main parser; every handler returns an exit code
and raises :class:`~sparsesim.core.errors.InputError` for bad input. torch is imported only by
:func:`sparsesim.workloads.capture.capture_zoo` and ``capture_user_model``, and only when a
capture runs; without torch it fails with an install hint.
"""

from __future__ import annotations

import time
from pathlib import Path

from sparsesim.core.errors import InputError
from sparsesim.workload_args import parse_gemm, parse_phases
from sparsesim.workloads.capture import MODELS, capture_user_model, capture_zoo
from sparsesim.workloads.capture.llm import InferenceCapture, capture_llm
from sparsesim.workloads.capture.user_model import parse_model_ref
from sparsesim.workloads.capture.zoo import NM_MODES
from sparsesim.workloads.gemm import PHASES, Phase
from sparsesim.workloads.networks import NETWORKS
from sparsesim.workloads.ops import gemm_op
from sparsesim.workloads.topology import read_topology
from sparsesim.workloads.trace import load_trace, validate
from sparsesim.workloads.trace.importers import IMPORTERS, import_trace
from sparsesim.workloads.trace.info import coverage_lines, describe
from sparsesim.workloads.trace.synthetic import OperandSparsity, SparsitySpec, synthesize
from sparsesim.workloads.trace.writer import check_output_dir

DTYPES = ("fp32", "fp16", "bf16")


def _size_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 2**20


def parse_bytes(text: str, field: str) -> int:
    """``"2G"`` -> 2 * 2**30; plain integers are bytes; suffixes K, M, G, T (binary)."""
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    body = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = body[-1:] if body[-1:] in units and body[-1:] else ""
    try:
        value = float(body[:-1] if unit else body) * units[unit]
    except ValueError:
        raise InputError(f"{field}: expected a number of bytes such as 500M or 8G, got {text!r}") from None
    if value < 1:
        raise InputError(f"{field}: must be at least 1 byte, got {text!r}")
    return int(value)


def _check_out(out: Path, overwrite: bool, inputs=()) -> Path:
    """Refuse a bad ``--out`` trace directory before any work (the writer checks again, naming ``out``)."""
    check_output_dir(out, overwrite, field="--out", inputs=inputs)
    return out


_USER_MODEL_FLAGS = (("input_shape", "--input-shape"), ("input_dtype", "--input-dtype"), ("vocab", "--vocab"),
                     ("sequence", "--sequence"), ("strict", "--strict"))
"""Flags that describe the user's own model; zoo models bring their own inputs and time axis."""


def cmd_capture_llm(args) -> int:
    """``--mode prefill|decode`` of a zoo decoder, ``--hf DIR`` or ``--hf-config FILE.json``."""
    if not (args.model or args.hf or args.hf_config):
        raise InputError("trace capture: give --model NAME, --hf DIR or --hf-config FILE.json")
    for attr, flag in _USER_MODEL_FLAGS:
        if getattr(args, attr) not in (None, False):
            raise InputError(f"{flag}: only with --model FILE.py:NAME or package.module:NAME "
                             "(an LLM decoder brings its own token inputs)")
    if args.image_size is not None:
        raise InputError("--image-size: only for the zoo CNNs")
    for flag, given in (("--nm", args.nm), ("--nm-mode", args.nm_mode), ("--warmup-steps", args.warmup_steps),
                        ("--steps", args.steps != 1 or None)):
        if given is not None:
            raise InputError(f"{flag}: not for LLM inference capture (--gen-len sets the decode steps)")
    mode = "decode" if args.mode == "train" else args.mode  # an LLM's default is decode
    gen = (0 if mode == "prefill" else 4) if args.gen_len is None else args.gen_len
    spec = InferenceCapture(mode=mode, prompt_len=16 if args.prompt_len is None else args.prompt_len, gen_len=gen,
                            batch=1 if args.batch is None else args.batch, dtype=args.dtype, seed=args.seed,
                            layers=args.layers, sample_steps=args.sample_steps,
                            max_bytes=None if args.max_bytes is None else parse_bytes(args.max_bytes, "--max-bytes"))
    label = args.model or Path(args.hf or args.hf_config).stem
    out = _check_out(Path(args.out or f"traces/{label}-{mode}"), args.overwrite,
                     [("--hf", args.hf), ("--hf-config", args.hf_config)])
    start = time.perf_counter()
    path = capture_llm(out=out, spec=spec, model=args.model, hf_dir=args.hf, hf_config=args.hf_config,
                       overwrite=args.overwrite, progress=not args.no_progress)
    print(f"wrote {path} ({_size_mib(path):.1f} MiB) in {time.perf_counter() - start:.1f} s; "
          f"see `sparsesim trace info {path}`")
    return 0


def cmd_capture(args) -> int:
    # imports torch only once the arguments are checked
    if args.hf and args.hf_config:
        raise InputError("--hf: give --hf or --hf-config, not both")
    decoder = args.model is not None and args.model in MODELS and MODELS.get(args.model).decoder is not None
    if args.hf or args.hf_config or decoder or args.mode in ("prefill", "decode"):
        if args.model is not None and (args.hf or args.hf_config):
            raise InputError("--model: give --model, --hf or --hf-config, not two of them")
        return cmd_capture_llm(args)
    if args.model is None:
        raise InputError("trace capture: give --model NAME, --hf DIR or --hf-config FILE.json")
    llm_only = [f for f in ("prompt_len", "gen_len", "max_bytes") if getattr(args, f) is not None]
    if llm_only or args.sample_steps != 1:
        flag = (llm_only or ["sample_steps"])[0].replace("_", "-")
        raise InputError(f"--{flag}: only for LLM inference capture (--mode prefill|decode)")
    args.batch = 8 if args.batch is None else args.batch
    layers = None
    if args.layers is not None:  # for the encoders (vit, bert) a number of layers, not a regex
        if not args.layers.strip().isdigit():
            raise InputError(f"--layers: {args.model} keeps a number of encoder layers, got {args.layers!r}")
        layers = int(args.layers)
    if args.nm_mode and not args.nm:
        raise InputError("--nm-mode: only with --nm N:M")
    ref = parse_model_ref(args.model)
    common = dict(steps=args.steps, batch=args.batch, mode=args.mode, dtype=args.dtype, seed=args.seed,
                  nm=args.nm, nm_mode=args.nm_mode or "bdwp", threads=args.threads, overwrite=args.overwrite,
                  progress=not args.no_progress)
    start = time.perf_counter()
    if ref is None:
        for attr, flag in _USER_MODEL_FLAGS:
            if getattr(args, attr) not in (None, False):
                raise InputError(f"{flag}: only with --model FILE.py:NAME or package.module:NAME "
                                 f"(zoo model {args.model!r} brings its own inputs)")
        out = _check_out(Path(args.out or f"traces/{args.model}-{args.mode}"), args.overwrite)
        path = capture_zoo(args.model, out=out, warmup_steps=args.warmup_steps, image_size=args.image_size,
                           layers=layers, **common)
    else:
        for flag, given in (("--image-size", args.image_size), ("--layers", layers)):
            if given is not None:
                raise InputError(f"{flag}: only for zoo models")
        if ref.is_file and not Path(ref.source).is_file():  # before torch loads (seconds to a minute)
            raise InputError(f"--model: {ref.source}: no such file")
        out = _check_out(Path(args.out or f"traces/{ref.name}-{args.mode}"), args.overwrite,
                         [("--model", ref.source if ref.is_file else None)])
        path = capture_user_model(args.model, out=out, warmup_steps=args.warmup_steps or 0,
                                  input_shape=args.input_shape, input_dtype=args.input_dtype or "float",
                                  vocab=args.vocab, sequence=args.sequence, strict=args.strict, **common)
    print(f"wrote {path} ({_size_mib(path):.1f} MiB) in {time.perf_counter() - start:.1f} s; "
          f"see `sparsesim trace info {path}`")
    with load_trace(path) as trace:
        print("\n".join(coverage_lines(trace.capture)))
    return 0


def cmd_info(args) -> int:
    if args.validate and args.no_verify:
        raise InputError("--no-verify: not with --validate, which checks every checksum")
    with load_trace(args.dir, verify=not args.no_verify) as trace:
        if args.validate:
            validate(trace, full=True)
        print(describe(trace))
    return 0


def cmd_validate(args) -> int:
    with load_trace(args.dir) as trace:
        validate(trace, full=True)
        unchecked = sum("sha256" not in listed for listed in trace.manifest["files"].values())
        print(f"ok: {args.dir}: {len(trace.ops)} ops, {len(trace.entries)} tensors, "
              f"{sum(trace.file_bytes.values()) / 2**20:.1f} MiB"
              + (f"; {unchecked} file(s) record no sha256, their bytes were not checked" if unchecked else ""))
    return 0


def cmd_import(args) -> int:
    _check_out(Path(args.out), args.overwrite, [("FILE", args.file)])
    path = import_trace(args.format, args.file, args.out, seed=args.seed, dtype=args.dtype, training=args.training,
                        overwrite=args.overwrite)
    print(f"wrote {path} ({_size_mib(path):.1f} MiB)")
    return 0


def cmd_synth(args) -> int:
    sources = [bool(args.gemm), bool(args.topology), bool(args.network)]
    if sum(sources) != 1:
        raise InputError("trace synth: give exactly one of --gemm, --topology or --network")
    if args.training and args.phases is not None:
        raise InputError(f"--training: give --training or --phases, not both (--training is --phases "
                         f"fwd,bwd_data,bwd_weight; got --phases {args.phases})")
    if args.gemm and args.batch is not None:
        raise InputError("--batch: only for --network and the conv rows of --topology; --gemm fixes its own "
                         "batch (its M)")
    batch = 1 if args.batch is None else args.batch
    if batch < 1:
        raise InputError(f"--batch: must be a positive integer, got {batch}")
    _check_out(Path(args.out), args.overwrite, [("--topology", args.topology)])
    if args.gemm:
        ops, name = [gemm_op(f"gemm{i}", *parse_gemm(g, i)) for i, g in enumerate(args.gemm)], "gemm"
    elif args.topology:
        ops, name = read_topology(args.topology, batch=batch), Path(args.topology).stem
    else:
        ops, name = NETWORKS.get(args.network, "--network")(batch), args.network
    phases = parse_phases(args.phases, False) or (PHASES if args.training else (Phase.FWD,))
    spec = SparsitySpec(input=OperandSparsity.parse(args.input, "--input"),
                        weight=OperandSparsity.parse(args.weight, "--weight"),
                        grad_output=OperandSparsity.parse(args.grad, "--grad"), phases=phases, steps=args.steps,
                        time_steps=args.time_steps, change=args.change)
    path = synthesize(ops, spec, args.out, seed=args.seed, dtype=args.dtype, name=name, overwrite=args.overwrite)
    print(f"wrote {path} ({len(ops)} ops, {_size_mib(path):.1f} MiB)")
    return 0


def add_trace_commands(subparsers) -> None:
    """Add ``trace`` and its sub-commands to the main parser's ``subparsers``."""
    trace = subparsers.add_parser("trace", help="capture, inspect, import or synthesise traces of real tensors")
    sub = trace.add_subparsers(dest="trace_command", required=True, parser_class=type(trace))

    cap = sub.add_parser("capture", help="record the tensors of a zoo model or your own PyTorch model (needs torch)",
                         description=f"Zoo models: {', '.join(MODELS.names())}. Your own model: --model FILE.py:NAME "
                                     "or package.module:NAME, where NAME is an nn.Module, or a callable returning "
                                     "one or a dict with 'model' and optional 'inputs(batch_size, generator)', "
                                     "'loss(output, inputs)' and 'optimizer(parameters)'.")
    cap.add_argument("--model", metavar="NAME|FILE.py:NAME|pkg.mod:NAME",
                     help=f"a zoo model ({', '.join(MODELS.names())}) or your own model")
    cap.add_argument("--input-shape", metavar="C,H,W",
                     help="own model: one sample's input shape; --batch adds the batch dimension (random inputs)")
    cap.add_argument("--input-dtype", choices=("float", "long"),
                     help="own model: float (random normal, default) or long (token ids below --vocab)")
    cap.add_argument("--vocab", type=int, metavar="V", help="own model: token ids are drawn below V")
    cap.add_argument("--sequence", action="store_true",
                     help="own model: record the t-th call of a layer in a step as time step t (delta replay)")
    cap.add_argument("--strict", action="store_true",
                     help="own model: fail if any GEMM work cannot be recorded (default: list it as skipped)")
    cap.add_argument("--steps", type=int, default=1, help="captured steps, each a fresh batch (default 1)")
    cap.add_argument("--batch", type=int, help="batch size (default 8; LLM inference: 1 sequence)")
    cap.add_argument("--out", metavar="DIR", help="trace directory (default traces/MODEL-MODE)")
    cap.add_argument("--mode", choices=("train", "infer", "prefill", "decode"), default="train",
                     help="train: forward, backward and update, all three tensors; infer: forward only; "
                          "LLMs: prefill (the prompt's forward pass) or decode (prefill, then --gen-len steps "
                          "with a KV cache; the default for LLM decoders)")
    cap.add_argument("--hf", metavar="DIR", help="a Hugging Face causal LM saved in DIR (local files only; needs "
                     "the hf extra); eager attention")
    cap.add_argument("--hf-config", metavar="FILE.json", help="a random-init Hugging Face causal LM from a config")
    cap.add_argument("--prompt-len", type=int, metavar="P", help="LLMs: prompt tokens (default 16)")
    cap.add_argument("--gen-len", type=int, metavar="G", help="LLMs: decode steps (default 4 with --mode decode)")
    cap.add_argument("--layers", metavar="REGEX|N", help="LLMs: record only ops whose names match REGEX (re.search); "
                     "vit, bert: keep the first N of their 12 encoder layers")
    cap.add_argument("--image-size", type=int, metavar="PX", help="CNNs: 32 (default, CIFAR stem) or 224 (ImageNet "
                     "stem and resolution, 1000-way classifier)")
    cap.add_argument("--sample-steps", type=int, default=1, metavar="K",
                     help="LLMs: record every K-th decode step (0, K, 2K...); the others run unrecorded")
    cap.add_argument("--max-bytes", metavar="N", help="LLMs: refuse a capture whose estimated size exceeds N bytes "
                     "(suffixes K, M, G)")
    cap.add_argument("--dtype", choices=DTYPES, default="fp32", help="storage dtype (default fp32)")
    cap.add_argument("--seed", type=int, default=0, help="seed of model init and data (default 0)")
    cap.add_argument("--warmup-steps", type=int, metavar="N",
                     help="training steps before capture (default: per zoo model; 0 for your own)")
    cap.add_argument("--threads", type=int, default=1, metavar="N",
                     help="PyTorch threads (default 1: reproducible tensors, and fastest on a shared machine)")
    cap.add_argument("--nm", metavar="N:M", help="train N:M sparse during warm-up and capture (see --nm-mode)")
    cap.add_argument("--nm-mode", choices=NM_MODES,
                     help="bdwp (default): SAT bidirectional pruning of dense weights, N:M along input features "
                          "forward and along output features for the input gradient, dense weight update; "
                          "forward: prune the weights themselves along input features after every update")
    cap.add_argument("--overwrite", action="store_true",
                     help="replace an existing trace directory (one holding nothing but a trace)")
    cap.add_argument("--no-progress", action="store_true", help="no progress bar")
    cap.set_defaults(func=cmd_capture)

    info = sub.add_parser("info", help="print a trace's ops, GEMM shapes, sizes, zero fractions, delta density")
    info.add_argument("dir", metavar="DIR")
    info.add_argument("--validate", action="store_true", help="also read every tensor and check the checksums")
    info.add_argument("--no-verify", action="store_true",
                      help="read the tensors without checking their files' SHA-256 (checked by default)")
    info.set_defaults(func=cmd_info)

    val = sub.add_parser("validate", help="check a trace fully: structure, shapes, checksums, NaN/Inf")
    val.add_argument("dir", metavar="DIR")
    val.set_defaults(func=cmd_validate)

    imp = sub.add_parser("import", help="convert another tool's file into a trace",
                         description="scalesim: SCALE-Sim topology CSV (operands synthesised); "
                                     "npz: NumPy arrays plus a manifest of ops (see src/sparsesim/workloads/trace/importers.py).")
    imp.add_argument("format", metavar="FORMAT", help=f"one of {', '.join(IMPORTERS.names())}")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--out", required=True, metavar="DIR")
    imp.add_argument("--seed", type=int, default=0, help="seed for synthesised operands (default 0)")
    imp.add_argument("--dtype", choices=DTYPES, default="fp32", help="storage dtype (default fp32)")
    imp.add_argument("--training", action="store_true", help="scalesim: also synthesise gradients (all phases)")
    imp.add_argument("--overwrite", action="store_true",
                     help="replace an existing trace directory (one holding nothing but a trace)")
    imp.set_defaults(func=cmd_import)

    syn = sub.add_parser("synth", help="write a synthetic trace with controlled sparsity",
                         description="Operand sparsity SPEC: dense, uniform:D, channel:D, block:D[:B], "
                                     "or nm:N:M (weights only); D is the kept fraction.")
    syn.add_argument("--gemm", metavar="M,N,K", action="append", help="a GEMM; repeatable")
    syn.add_argument("--topology", metavar="FILE.csv", help="SCALE-Sim topology CSV")
    syn.add_argument("--network", metavar="NAME", help="built-in layer list (see `sparsesim list`)")
    syn.add_argument("--batch", type=int, help="batch for --network and conv rows of --topology (default 1; "
                                               "not with --gemm)")
    syn.add_argument("--out", required=True, metavar="DIR")
    syn.add_argument("--input", default="uniform:0.5", metavar="SPEC", help="input activations (default uniform:0.5)")
    syn.add_argument("--weight", default="dense", metavar="SPEC", help="weights (default dense)")
    syn.add_argument("--grad", default="uniform:0.5", metavar="SPEC", help="output gradients (default uniform:0.5)")
    syn.add_argument("--phases", metavar="fwd,bwd_data,bwd_weight", help="phases to record (default fwd)")
    syn.add_argument("--training", action="store_true", help="record all three phases (not with --phases)")
    syn.add_argument("--steps", type=int, default=1, help="independent steps (default 1)")
    syn.add_argument("--time-steps", type=int, metavar="T", help="make the input a sequence of T time steps")
    syn.add_argument("--change", type=float, default=0.1, help="fraction of inputs redrawn per time step (default 0.1)")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--dtype", choices=DTYPES, default="fp32", help="storage dtype (default fp32)")
    syn.add_argument("--overwrite", action="store_true",
                     help="replace an existing trace directory (one holding nothing but a trace)")
    syn.set_defaults(func=cmd_synth)
