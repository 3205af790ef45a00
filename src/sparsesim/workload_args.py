"""Workload arguments -> a :class:`~sparsesim.workloads.ops.Workload`, in one place.

A :class:`WorkloadSpec` names a workload without building it: a built-in network and its
batch, a list of GEMMs, a topology CSV or a trace directory, plus the phases to simulate. It
is small, frozen and picklable, so a sweep ships it to a Dask worker, which builds the
workload there (reading the topology or trace file itself). :func:`build_workload` is the one
function that turns a spec into a workload; the ``run`` command (:func:`spec_from_args`), the
Python API's constructors (:mod:`sparsesim.api`) and sweep specs
(:mod:`sparsesim.sweeps.spec`) all go through it, so the three agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sparsesim.core.errors import InputError, arg_error, field_error
from sparsesim.workloads.gemm import INFERENCE_PHASES, PHASES, Phase, parse_phase
from sparsesim.workloads.ops import Workload, gemm_op
from sparsesim.workloads.llm_networks import DECODERS, llm_workload
from sparsesim.workloads.networks import NETWORKS
from sparsesim.workloads.topology import read_topology
from sparsesim.workloads.trace import load_trace

WORKLOAD_KINDS = ("network", "gemm", "topology", "trace")
LLM_KEYS = ("prompt_len", "gen_len", "act_sparsity")
"""Workload settings only the LLM networks take (prompt tokens, decode steps, activation zero fraction)."""
MAX_DIM = 2**31
"""Largest GEMM dimension accepted (anything larger is a typo, and overflows the kernels)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadSpec:
    """One workload, named but not built.

    ``phases=None`` means the default: ``fwd`` for shape-only workloads (network, GEMMs,
    topology) and every recorded phase for a trace.
    """

    kind: str  # one of WORKLOAD_KINDS
    source: str  # network name, "gemm", or the path of a topology file / trace directory
    batch: int = 1
    gemms: tuple[tuple[int, int, int], ...] = ()
    phases: tuple[str, ...] | None = None
    digest: str = ""  # content digest of a topology file or trace manifest (sweeps; "" otherwise)
    # LLM networks only (``workloads.llm_networks``): prompt tokens, decode steps, and the
    # zero fraction of the synthetic input activations of a sparse run (None: the default)
    prompt_len: int | None = None
    gen_len: int | None = None
    act_sparsity: float | None = None
    # traces only: check each tensor file's recorded SHA-256 on its first read (False trusts the bytes)
    verify: bool = True

    @property
    def label(self) -> str:
        """Short human name, e.g. ``resnet18 b1 fwd``."""
        llm = self.kind == "network" and any(v is not None for v in (self.prompt_len, self.gen_len, self.act_sparsity)) \
            or self.kind == "network" and _is_decoder(self.source)
        if llm:  # the LLM networks' own settings, with their defaults (see build_workload)
            base = (f"{self.source} b{self.batch} p{128 if self.prompt_len is None else self.prompt_len}"
                    f" g{32 if self.gen_len is None else self.gen_len}"
                    + ("" if self.act_sparsity is None else f" s{self.act_sparsity:g}"))
        elif self.kind == "network":
            base = f"{self.source} b{self.batch}"
        elif self.kind == "gemm":
            base = ("gemm " + "x".join(map(str, self.gemms[0])) if len(self.gemms) == 1
                    else f"{len(self.gemms)} gemms " + "x".join(map(str, self.gemms[0])) + ",...")
        else:
            base = Path(self.source).name
        if self.phases is None:
            return f"{base} {'recorded' if self.kind == 'trace' else 'prefill+decode' if llm else 'fwd'}"
        phases = "train" if self.phases == tuple(str(p) for p in PHASES) else "+".join(self.phases)
        return f"{base} {phases}"

    def identity(self) -> dict:
        """Everything that defines the workload's result (hashed into a sweep point's id)."""
        ident = {"kind": self.kind, "source": self.source, "batch": self.batch,
                 "gemms": [list(g) for g in self.gemms],
                 "phases": None if self.phases is None else list(self.phases), "digest": self.digest,
                 "prompt_len": self.prompt_len, "gen_len": self.gen_len, "act_sparsity": self.act_sparsity}
        if not self.verify:  # an unverified replay is not the verified one (and verified ids stay as they were)
            ident["verify"] = False
        return ident


def _is_decoder(name: str) -> bool:
    """Whether ``name`` is one of the shape-only LLM networks (:mod:`sparsesim.workloads.llm_networks`)."""
    return name in DECODERS


def build_workload(spec: WorkloadSpec) -> Workload:
    """The :class:`~sparsesim.workloads.ops.Workload` that ``spec`` names (reads files it refers to).

    A phase the workload does not have is refused (``phases``): the training phases for an
    LLM network, ``prefill``/``decode`` for the others; a trace refuses phases it did not record.
    """
    phases = None if spec.phases is None else tuple(Phase(p) for p in spec.phases)
    if spec.kind == "trace":
        return load_trace(Path(spec.source), verify=spec.verify).workload(phases)
    decoder = spec.kind == "network" and _is_decoder(spec.source)
    if phases is not None:
        _check_phases(phases, INFERENCE_PHASES if decoder else PHASES, spec)
    if decoder:
        return llm_workload(spec.source, batch=spec.batch,
                            prompt_len=128 if spec.prompt_len is None else spec.prompt_len,
                            gen_len=32 if spec.gen_len is None else spec.gen_len,
                            act_sparsity=spec.act_sparsity, **({"phases": phases} if phases else {}))
    for flag in LLM_KEYS:
        if getattr(spec, flag) is not None:
            raise arg_error(flag, f"only for the LLM networks ({', '.join(DECODERS.names())})")
    phases = phases or (Phase.FWD,)
    if spec.kind == "network":
        return Workload(spec.source, tuple(NETWORKS.get(spec.source, "network")(spec.batch)), phases,
                        meta={"network": {"name": spec.source, "batch": spec.batch}})
    if spec.kind == "gemm":
        ops = tuple(gemm_op(f"gemm{i}", *g) for i, g in enumerate(spec.gemms))
        return Workload("gemm", ops, phases)
    if spec.kind == "topology":
        path = Path(spec.source)
        return Workload(path.stem, tuple(read_topology(path)), phases)
    raise InputError(f"workload: unknown kind {spec.kind!r} (choose from {', '.join(WORKLOAD_KINDS)})")


def _check_phases(phases: tuple[Phase, ...], allowed: tuple[Phase, ...], spec: WorkloadSpec) -> None:
    """Refuse a phase the workload of ``spec`` does not have, naming it and the ones it has."""
    wrong = [str(p) for p in phases if p not in allowed]
    if not wrong:
        return
    what = {"gemm": "a GEMM", "topology": "a topology"}.get(spec.kind, spec.source)
    other = ("fwd, bwd_data and bwd_weight are training phases" if allowed == INFERENCE_PHASES
             else "prefill and decode belong to the LLM networks")
    raise arg_error("phases", f"{' and '.join(wrong)} {'is not a phase' if len(wrong) == 1 else 'are not phases'} "
                              f"of {what}: its phases are {', '.join(map(str, allowed))} ({other})")


def check_dims(values, field: str) -> tuple[int, int, int]:
    """``(M, N, K)`` as positive integers, or an error naming ``field.M`` etc."""
    values = tuple(values)
    if len(values) != 3:
        raise field_error(field, f"expected M, N, K, got {list(values)!r}")
    dims = []
    for name, value in zip("MNK", values):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise field_error(f"{field}.{name}", f"must be a positive integer, got {value!r}")
        if value > MAX_DIM:
            raise field_error(f"{field}.{name}", f"absurdly large ({value}); at most 2**31")
        dims.append(value)
    return dims[0], dims[1], dims[2]


def parse_gemm(text: str, index: int) -> tuple[int, int, int]:
    """``"64,128,256"`` -> ``(64, 128, 256)``; each must be a positive integer."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise field_error(f"--gemm[{index}]", f"expected M,N,K, got {text!r}")
    dims = []
    for name, part in zip("MNK", parts):
        try:
            dims.append(int(part))
        except ValueError:
            raise field_error(f"--gemm[{index}].{name}", f"expected a positive integer, got {part!r}") from None
    return check_dims(dims, f"--gemm[{index}]")


def parse_phases(text: str | None, training: bool) -> tuple[Phase, ...] | None:
    """``--phases fwd,bwd_data`` or ``--training`` (all three); ``None`` means the default.

    A phase given twice is simulated once (in the order first given), as the API and sweep
    specs read it; ``--training`` with ``--phases`` is refused (two answers to one question).
    """
    if training:
        if text is not None:
            raise field_error("--training", f"give --training or --phases, not both (--training is "
                                            f"--phases {','.join(map(str, PHASES))}; got --phases {text})")
        return PHASES
    names = phase_names(text, "--phases")
    return None if names is None else tuple(Phase(p) for p in names)


def phase_names(phases, field: str) -> tuple[str, ...] | None:
    """Phases given as names or :class:`Phase` values -> their names, checked (``None`` stays)."""
    if phases is None:
        return None
    if isinstance(phases, str):
        phases = [p.strip() for p in phases.split(",") if p.strip()]
    names = tuple(dict.fromkeys(str(parse_phase(str(p), field)) for p in phases))
    if not names:
        raise field_error(field, "empty list")
    return names


def spec_from_args(args) -> WorkloadSpec:
    """The workload of the ``run`` command: ``--gemm``, ``--topology``, ``--network`` or ``--trace``.

    Flags that the chosen workload would ignore are refused, naming both: ``--batch`` other
    than with ``--network`` (a GEMM's M, a topology's rows and a trace's tensors fix their own
    batch), the LLM settings other than with an LLM network, ``--training`` with an LLM network.
    """
    parsed = parse_phases(args.phases, args.training)
    phases = None if parsed is None else tuple(str(p) for p in parsed)
    source = "--gemm" if args.gemm else "--topology" if args.topology else "--trace" if args.trace else None
    if source is not None:
        for flag in ("prompt_len", "gen_len", "act_sparsity"):
            if getattr(args, flag, None) is not None:
                raise field_error(f"--{flag.replace('_', '-')}", f"only for the LLM networks (--network), not {source}")
        if args.batch is not None:
            raise field_error("--batch", f"only for --network; {source} fixes its own batch "
                                         "(a GEMM's M, a topology's rows, a trace's recorded tensors)")
    if args.no_verify and not args.trace:
        raise field_error("--no-verify", "only with --trace (it skips the trace files' checksums)")
    if args.gemm:
        gemms = tuple(parse_gemm(g, i) for i, g in enumerate(args.gemm))
        return WorkloadSpec(kind="gemm", source="gemm", gemms=gemms, phases=phases)
    if args.topology:
        return WorkloadSpec(kind="topology", source=str(args.topology), phases=phases)
    if args.network:
        batch = 1 if args.batch is None else args.batch
        if batch < 1:
            raise field_error("--batch", f"must be a positive integer, got {batch}")
        if args.network not in DECODERS:
            NETWORKS.get(args.network, "--network")  # the flag's name in the error, not the API's
        elif args.training:
            raise field_error("--training", f"{args.network} is an LLM network: inference only "
                                            "(its phases are prefill and decode; see --phases)")
        return WorkloadSpec(kind="network", source=args.network, batch=batch, phases=phases,
                            prompt_len=args.prompt_len, gen_len=args.gen_len, act_sparsity=args.act_sparsity)
    if args.trace:
        return WorkloadSpec(kind="trace", source=str(args.trace), phases=phases, verify=not args.no_verify)
    raise InputError("run: give one of --gemm, --topology, --network or --trace")


def workload_from_args(args) -> Workload:
    """Build the workload named by the ``run`` command's arguments."""
    return build_workload(spec_from_args(args))
