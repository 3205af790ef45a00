"""Turn the ``run`` command's workload arguments into a :class:`~sparsesim.workloads.ops.Workload`."""

from __future__ import annotations

from pathlib import Path

from sparsesim.workloads.errors import InputError, field_error
from sparsesim.workloads.gemm import PHASES, Phase, parse_phase
from sparsesim.workloads.networks import NETWORKS
from sparsesim.workloads.ops import Workload, gemm_op


def parse_gemm(text: str, index: int) -> tuple[int, int, int]:
    """``"64,128,256"`` -> ``(64, 128, 256)``; each must be a positive integer."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise field_error(f"--gemm[{index}]", f"expected M,N,K, got {text!r}")
    dims = []
    for name, part in zip("MNK", parts):
        try:
            value = int(part)
        except ValueError:
            raise field_error(f"--gemm[{index}].{name}", f"expected a positive integer, got {part!r}") from None
        if value < 1:
            raise field_error(f"--gemm[{index}].{name}", f"must be a positive integer, got {value}")
        if value > 2**31:
            raise field_error(f"--gemm[{index}].{name}", f"absurdly large ({value}); at most 2**31")
        dims.append(value)
    return dims[0], dims[1], dims[2]


def parse_phases(text: str | None, training: bool) -> tuple[Phase, ...] | None:
    """``--phases fwd,bwd_data`` or ``--training`` (all three); ``None`` means the default."""
    if training:
        return PHASES
    if text is None:
        return None
    phases = tuple(parse_phase(p.strip(), "--phases") for p in text.split(",") if p.strip())
    if not phases:
        raise field_error("--phases", "empty list")
    return phases


def workload_from_args(args) -> Workload:
    """Build the workload named by ``--gemm``, ``--topology``, ``--network`` or ``--trace``."""
    phases = parse_phases(args.phases, args.training)
    if args.gemm:
        ops = tuple(gemm_op(f"gemm{i}", *parse_gemm(g, i)) for i, g in enumerate(args.gemm))
        return Workload("gemm", ops, phases or (Phase.FWD,))
    if args.topology:
        from sparsesim.workloads.topology import read_topology

        path = Path(args.topology)
        return Workload(path.stem, tuple(read_topology(path)), phases or (Phase.FWD,))
    if args.network:
        if args.batch < 1:
            raise field_error("--batch", f"must be a positive integer, got {args.batch}")
        from sparsesim.workloads.llm_networks import DECODERS, llm_workload

        if args.network in DECODERS:
            prompt = 128 if args.prompt_len is None else args.prompt_len
            gen = 32 if args.gen_len is None else args.gen_len
            return llm_workload(args.network, batch=args.batch, prompt_len=prompt, gen_len=gen,
                                act_sparsity=args.act_sparsity, **({"phases": phases} if phases else {}))
        for flag in ("prompt_len", "gen_len", "act_sparsity"):
            if getattr(args, flag, None) is not None:
                raise field_error(f"--{flag.replace('_', '-')}", f"only for the LLM networks ({', '.join(DECODERS.names())})")
        ops = tuple(NETWORKS.get(args.network, "--network")(args.batch))
        return Workload(args.network, ops, phases or (Phase.FWD,))
    if args.trace:
        from sparsesim.workloads.trace import load_trace

        trace = load_trace(Path(args.trace))
        return trace.workload(phases)
    raise InputError("run: give one of --gemm, --topology, --network or --trace")
