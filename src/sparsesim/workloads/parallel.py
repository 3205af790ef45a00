"""An LLM inference workload split over the chips of a system (``system.*``; docs/scale-out.md).

One chip's share of the work, and the collectives between chips, as ops:

* **Tensor parallel** (Megatron-LM, Shoeybi et al. 2019): ``q/k/v`` and ``gate/up`` are
  column-parallel (each chip holds ``1/tp`` of their output features), ``o_proj`` and
  ``down_proj`` row-parallel (``1/tp`` of their input features), each followed by an
  all-reduce of the ``tokens x dim`` activations; attention runs on the chip's
  ``heads/tp`` query heads and its key/value heads (``kv_heads/tp``, or one replicated head
  where ``tp > kv_heads``); the LM head is column-parallel over the vocabulary, its logits
  all-gathered.
* **Pipeline parallel**: contiguous runs of ``layers/pp`` layers per stage (the LM head on
  the last), the activations sent to the next stage after each stage's last layer.
* **Data parallel**: each replica runs ``batch/dp`` sequences; inference has no collective
  between replicas.
* **Expert parallel** (DeepSpeed-MoE, Rajbhandari et al. 2022): the experts spread over
  ``ep`` replicas (``experts/ep`` each); every token's hidden state goes to the replicas of its
  ``top_k`` experts by an all-to-all and comes back by another, and a replica's experts see
  the tokens of all ``ep`` replicas routed to them (the shape-only model's balanced routing,
  :mod:`sparsesim.workloads.llm_networks`, over the tokens of the ``ep`` replicas).
* **Micro-batches**: a replica's batch flows through the pipeline in ``micro_batches``
  parts; every op runs once per micro-batch (its ``repeat``).

Every op carries its pipeline stage (``meta["stages"]``); the rows of one chip stand for every
chip of its tensor-parallel group, which do the same work.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

from sparsesim.core.errors import field_error
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.llm_networks import DECODERS, DecoderShape, merged_name
from sparsesim.workloads.ops import Linear, Matmul, Workload


@dataclass(frozen=True, slots=True, kw_only=True)
class Collective:
    """A collective between the chips of a group: ``nbytes`` as the collective's ``S``
    (:mod:`sparsesim.hardware.interconnect`) over ``group`` chips."""

    kind: ClassVar[str] = "collective"
    name: str
    collective: str  # all_reduce, all_gather, reduce_scatter, all_to_all, send_recv
    nbytes: int
    group: int
    overlaps: bool = False  # may run beside later compute (a gradient all-reduce beside the backward pass)

    @property
    def phases(self) -> tuple[Phase, ...]:
        return (Phase.PREFILL, Phase.DECODE, Phase.BWD_WEIGHT)


@dataclass(frozen=True, slots=True)
class _Item:
    op: object
    phase: Phase
    time_step: int | None
    stage: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Split:
    """How the model is split (``system.*``) and the bytes of one activation element."""

    tp: int
    pp: int
    dp: int
    ep: int
    micro_batches: int
    element_bytes: int


def _check(shape: DecoderShape, split: Split, batch: int) -> None:
    tp = split.tp
    if shape.heads % tp:
        raise field_error("system.tensor_parallel", f"{tp} does not divide {shape.name}'s {shape.heads} heads")
    if shape.kv_heads % tp and tp % shape.kv_heads:
        raise field_error("system.tensor_parallel", f"{tp} neither divides nor is a multiple of {shape.name}'s "
                                                    f"{shape.kv_heads} key/value heads")
    for key, value, what in (("ffn_hidden", shape.ffn_hidden, "FFN width"), ("vocab", shape.vocab, "vocabulary")):
        if value % tp:
            raise field_error("system.tensor_parallel", f"{tp} does not divide {shape.name}'s {what} {value}")
    if split.pp > shape.layers:
        raise field_error("system.pipeline_parallel", f"{split.pp} stages for {shape.layers} layers")
    if batch % split.dp:
        raise field_error("system.data_parallel", f"{split.dp} replicas do not divide the batch of {batch}")
    if (batch // split.dp) % split.micro_batches:
        raise field_error("system.micro_batches", f"{split.micro_batches} do not divide a replica's batch of "
                                                  f"{batch // split.dp}")
    if split.ep > 1 and not shape.moe:
        raise field_error("system.expert_parallel", f"{shape.name} has no experts")
    if shape.moe and shape.experts % split.ep:
        raise field_error("system.expert_parallel", f"{split.ep} does not divide {shape.name}'s {shape.experts} "
                                                    "experts")


def stage_of(layer: int, layers: int, pp: int) -> int:
    """The pipeline stage of ``layer``: contiguous runs, the first stages one layer longer where
    ``pp`` does not divide ``layers``."""
    size, extra = divmod(layers, pp)
    edge = extra * (size + 1)
    return layer // (size + 1) if layer < edge else extra + (layer - edge) // size


def chip_memory(shape: DecoderShape, split: Split, batch: int, context: int) -> dict:
    """Bytes one chip of the most loaded pipeline stage holds of decoder ``shape`` under
    ``split``, at ``split.element_bytes`` per element: its shard of the weights and of the KV
    cache of its ``batch / dp`` sequences at ``context`` positions each.

    Per layer the chip holds q and o of its ``heads / tp`` heads, k and v of its key/value heads
    (``kv_heads / tp``, or one, replicated, where ``tp`` exceeds them, as the split computes),
    ``1 / tp`` of the FFN (of each of its ``experts / ep`` experts, plus the whole router), and
    both RMSNorm gains. The first stage holds the embedding and the last the final norm and the
    LM head, each split over the vocabulary by ``tp`` (Megatron's vocabulary-parallel layers);
    a tied head is stored once where one stage holds both, and on the first and last stage
    alike where they differ (each runs its GEMM). Activations and workspace are not counted.
    """
    tp, d, hd = split.tp, shape.dim, shape.head_dim
    h = shape.heads // tp
    kvh = shape.kv_heads // tp if shape.kv_heads % tp == 0 else 1
    ffn = shape.ffn_hidden // tp
    mlp = 3 * d * ffn if not shape.moe else d * shape.experts + (shape.experts // split.ep) * 3 * d * ffn
    per_layer = 2 * d * h * hd + 2 * d * kvh * hd + mlp + 2 * d
    vocab = shape.vocab // tp * d
    sequences = batch // split.dp
    stages = []
    for stage in range(split.pp):
        layers = sum(stage_of(i, shape.layers, split.pp) == stage for i in range(shape.layers))
        weights = layers * per_layer
        weights += vocab if stage == 0 else 0
        if stage == split.pp - 1:  # the final norm and the LM head (tied: stage 0's copy when it is this stage)
            weights += d + (0 if shape.tie_embeddings and split.pp == 1 else vocab)
        kv = layers * 2 * kvh * hd * context * sequences
        stages.append((weights * split.element_bytes, kv * split.element_bytes))
    weights, kv = max(stages, key=sum)
    return {"weight_bytes_per_chip": weights, "kv_cache_bytes_per_chip": kv, "memory_bytes_per_chip": weights + kv}


def _layer_items(shape: DecoderShape, split: Split, i: int, mb: int, new: int, context: int, first_token: int,
                 phase: Phase, step: int | None):
    p = f"model.layers.{i}"
    tp, d, hd = split.tp, shape.dim, shape.head_dim
    stage = stage_of(i, shape.layers, split.pp)
    h = shape.heads // tp
    kvh = shape.kv_heads // tp if shape.kv_heads % tp == 0 else 1
    tokens = mb * new
    act = tokens * d * split.element_bytes  # one tokens x dim activation

    def item(op):
        return _Item(op, phase, step, stage)

    yield item(Linear(name=f"{p}.self_attn.q_proj", tokens=tokens, in_features=d, out_features=h * hd))
    yield item(Linear(name=f"{p}.self_attn.k_proj", tokens=tokens, in_features=d, out_features=kvh * hd))
    yield item(Linear(name=f"{p}.self_attn.v_proj", tokens=tokens, in_features=d, out_features=kvh * hd))
    yield item(Matmul(name=f"{p}.self_attn.matmul0", batch=mb * kvh, m=(h // kvh) * new, k=hd, n=context))
    yield item(Matmul(name=f"{p}.self_attn.matmul1", batch=mb * kvh, m=(h // kvh) * new, k=context, n=hd))
    yield item(Linear(name=f"{p}.self_attn.o_proj", tokens=tokens, in_features=h * hd, out_features=d))
    if tp > 1:
        yield item(Collective(name=f"{p}.self_attn.o_proj.all_reduce", collective="all_reduce", nbytes=act, group=tp))
    if not shape.moe:
        f = shape.ffn_hidden // tp
        yield item(Linear(name=f"{p}.mlp.gate_proj", tokens=tokens, in_features=d, out_features=f))
        yield item(Linear(name=f"{p}.mlp.up_proj", tokens=tokens, in_features=d, out_features=f))
        yield item(Linear(name=f"{p}.mlp.down_proj", tokens=tokens, in_features=f, out_features=d))
        if tp > 1:
            yield item(Collective(name=f"{p}.mlp.down_proj.all_reduce", collective="all_reduce", nbytes=act, group=tp))
    else:
        moe = f"{p}.block_sparse_moe"
        ep = split.ep
        yield item(Linear(name=f"{moe}.gate", tokens=tokens, in_features=d, out_features=shape.experts))
        routed = tokens * shape.top_k * d * split.element_bytes  # each token's state to each of its experts
        if ep > 1:
            yield item(Collective(name=f"{moe}.dispatch", collective="all_to_all", nbytes=routed, group=ep))
        own = shape.experts // ep  # replica 0's experts: 0 .. own-1, fed by the tokens of the ep replicas
        counts = Counter((shape.top_k * t + j) % shape.experts
                         for t in range(first_token * ep, (first_token + tokens) * ep) for j in range(shape.top_k))
        f = shape.ffn_hidden // tp
        for e in sorted(e for e in counts if e < own):
            n = counts[e]
            yield item(Linear(name=f"{moe}.experts.{e}.w1", tokens=n, in_features=d, out_features=f))
            yield item(Linear(name=f"{moe}.experts.{e}.w3", tokens=n, in_features=d, out_features=f))
            yield item(Linear(name=f"{moe}.experts.{e}.w2", tokens=n, in_features=f, out_features=d))
        if tp > 1:
            # each chip sums its experts' shares of the tokens it holds
            yield item(Collective(name=f"{moe}.all_reduce", collective="all_reduce",
                                  nbytes=max(sum(counts[e] for e in counts if e < own), 1) * d * split.element_bytes,
                                  group=tp))
        if ep > 1:
            yield item(Collective(name=f"{moe}.combine", collective="all_to_all", nbytes=routed, group=ep))
    last_of_stage = i + 1 < shape.layers and stage_of(i + 1, shape.layers, split.pp) != stage
    if last_of_stage:
        yield item(Collective(name=f"{p}.send_recv", collective="send_recv", nbytes=act, group=2))


def _lm_head(shape: DecoderShape, split: Split, mb: int, phase: Phase, step: int | None):
    stage = split.pp - 1
    yield _Item(Linear(name="lm_head", tokens=mb, in_features=shape.dim, out_features=shape.vocab // split.tp),
                phase, step, stage)
    if split.tp > 1:
        yield _Item(Collective(name="lm_head.all_gather", collective="all_gather",
                               nbytes=mb * shape.vocab * split.element_bytes, group=split.tp), phase, step, stage)


def _params(op) -> tuple:
    return tuple(sorted((f.name, getattr(op, f.name)) for f in dataclasses.fields(op) if f.name != "name"))


def split_workload(workload: Workload, split: Split) -> Workload:
    """One chip's share of the shape-only LLM ``workload`` (built by
    :func:`~sparsesim.workloads.llm_networks.llm_workload`) under ``split``, with the
    collectives, aggregated like the unsplit workload (layers of one stage, decode steps)."""
    llm = workload.meta.get("llm")
    if llm is None:
        raise field_error("system.chips", "more than one chip runs the shape-only networks: the LLM networks "
                                          "(run --network llama2_7b, llama2_70b, llama3_8b, mixtral_8x7b, ...) "
                                          "and, data parallel, the training networks (run --network resnet50 "
                                          "--training)")
    shape = DECODERS.get(llm["decoder"], "network")
    batch, prompt_len, gen_len = llm["batch"], llm["prompt_len"], llm["gen_len"]
    _check(shape, split, batch)
    mb = batch // split.dp // split.micro_batches
    items = []
    if Phase.PREFILL in workload.phases:
        for i in range(shape.layers):
            items += _layer_items(shape, split, i, mb, prompt_len, prompt_len, 0, Phase.PREFILL, None)
        items += _lm_head(shape, split, mb, Phase.PREFILL, None)
    if Phase.DECODE in workload.phases:
        for t in range(gen_len):
            first = mb * (prompt_len + t)
            for i in range(shape.layers):
                items += _layer_items(shape, split, i, mb, 1, prompt_len + t + 1, first, Phase.DECODE, t)
            items += _lm_head(shape, split, mb, Phase.DECODE, t)
    merged: dict[tuple, list] = {}
    for x in items:
        base, step = merged_name(x.op, x.time_step)
        if split.pp > 1:
            base = f"stage{x.stage}:{base}"
        key = (base, x.phase, x.stage, type(x.op), _params(x.op))
        if key in merged:
            merged[key][1] += 1
        else:
            merged[key] = [_Item(dataclasses.replace(x.op, name=base), x.phase, step, x.stage), 1]
    kept = [v[0] for v in merged.values()]
    repeats = tuple(v[1] * split.micro_batches for v in merged.values())
    meta = {**workload.meta, "phases_by_op": tuple((x.phase,) for x in kept), "repeats": repeats,
            "stages": tuple(x.stage for x in kept),
            "system": {"tp": split.tp, "pp": split.pp, "dp": split.dp, "ep": split.ep,
                       "micro_batches": split.micro_batches, "batch_per_micro_batch": mb}}
    return Workload(workload.name, tuple(x.op for x in kept), workload.phases,
                    time_steps=tuple(x.time_step for x in kept), source=workload.source, meta=meta)


def split_network(workload: Workload, split: Split) -> Workload:
    """One replica's share of a shape-only training network (``run --network NAME --training``)
    under data parallelism: the batch split over ``dp`` replicas, and after each layer's
    ``bwd_weight`` an all-reduce of its weight gradient (``weight elements x element bytes``)
    that may run while the backward pass goes on through the earlier layers."""
    from sparsesim.workloads.networks import NETWORKS

    net = workload.meta["network"]
    for key, value in (("system.tensor_parallel", split.tp), ("system.pipeline_parallel", split.pp),
                       ("system.expert_parallel", split.ep), ("system.micro_batches", split.micro_batches)):
        if value != 1:
            raise field_error(key, f"{net['name']} is split by data parallelism only (tensor, pipeline and expert "
                                   "parallelism split the LLM networks)")
    if net["batch"] % split.dp:
        raise field_error("system.data_parallel", f"{split.dp} replicas do not divide the batch of {net['batch']}")
    ops, phases_by_op = [], []
    for op in NETWORKS.get(net["name"], "network")(net["batch"] // split.dp):
        ops.append(op)
        phases_by_op.append(tuple(p for p in workload.phases if p in op.phases))
        if Phase.BWD_WEIGHT in workload.phases and not isinstance(op, Matmul):  # a bmm has no parameters
            size = 1
            for d in op.weight_shape:
                size *= d
            ops.append(Collective(name=f"{op.name}.grad_all_reduce", collective="all_reduce",
                                  nbytes=size * split.element_bytes, group=split.dp, overlaps=True))
            phases_by_op.append((Phase.BWD_WEIGHT,))
    meta = {**workload.meta, "phases_by_op": tuple(phases_by_op), "stages": tuple(0 for _ in ops),
            "system": {"dp": split.dp, "batch_per_replica": net["batch"] // split.dp}}
    return Workload(workload.name, tuple(ops), workload.phases, meta=meta)
