"""Case study: how a decoder's MLP activation ratio evolves while it trains on real text, ReLU vs SiLU.

Sparsing Law (Luo et al. 2024, arXiv:2411.02335) reports that the activation ratio
(1 - sparsity) of a ReLU-gated decoder *falls* with the training tokens while a SiLU one's
*rises*; the Lazy Neuron paper (Li et al. 2023, arXiv:2210.06313) reports that trained
Transformers' MLP activations are very sparse. This study trains the same small Llama-style
decoder (:func:`sparsesim.workloads.capture.llama.build`, gated MLP ``down(act(gate(x)) * up(x))``)
from scratch twice, once with ``act`` ReLU and once with SiLU: same shape, same initial weights,
same training windows in the same order, same seed. At checkpoints spaced evenly in log(steps)
it captures every layer's MLP on held-out text and records the activation ratio and perplexity.

Text and split (nothing of the calibration part is used): the built-in corpus's evaluation part
(:func:`sparsesim.workloads.corpus.corpus_part`, ``"eval"``) is split into paragraphs (blocks
between blank lines); paragraph ``i`` is held out when ``i % HELDOUT_EVERY == HELDOUT_AT``; every
other paragraph is training text unless its text equals a held-out one (the part repeats some
short paragraphs, code lines and notes), so no held-out paragraph is ever trained on.
Tokens are UTF-8 bytes (vocabulary 256), so no tokenizer is needed.

Activation ratio, per layer, over every held-out token ``t`` and MLP neuron ``i``:

- ``positive_fraction``: the fraction of gate outputs ``act(gate(x))_ti > 0``. For ReLU it is
  the exact fraction of non-zeros, the ReLU model's ``activation_ratio``.
- ``cett_ratio``: SiLU gives no exact zeros, so a neuron counts as inactive when its output
  ``n_ti = a_ti * W_down[:, i]`` (``a = act(gate(x)) * up(x)``) has norm below one threshold per
  layer, chosen as large as possible while the mean over tokens of the CETT (cumulative error of
  tail truncation, ``||sum_{inactive i} n_ti|| / ||sum_i n_ti||``; Zhang et al. 2024, "ReLU^2
  Wins", arXiv:2402.03804, the measure Sparsing Law builds on) stays at most ``cett``. The same
  rule is applied to both models, and is the SiLU model's ``activation_ratio``. Sparsing Law
  picks the CETT value that raises perplexity by 1% (CETT-PPL-1%); this study uses the fixed,
  stated ``cett`` instead (no perplexity search).

A checkpoint's ratio is the mean of its layers' (every layer has as many neurons and tokens).
Perplexity is ``exp`` of the mean next-byte cross-entropy over the held-out windows.

The final ReLU model is saved as safetensors under the cache directory
(``$XDG_CACHE_HOME/sparsesim/training-dynamics``, default ``~/.cache``), keyed by its settings;
:func:`trained_relu_decoder` loads it (training it first if absent), for studies that need a
trained ReLU decoder rather than a random one. Three jobs, one function each: :func:`compute`,
:func:`plot`, :func:`write`; every sentence of the report is computed from the table.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from sparsesim.core.errors import arg_error
from sparsesim.studies.common import STUDIES, Study, md_table, trend, write_report

log = logging.getLogger(__name__)

ACTIVATIONS = ("relu", "silu")
HELDOUT_EVERY = 10
HELDOUT_AT = 9
"""Paragraph ``i`` of the evaluation part is held out when ``i % 10 == 9`` (every tenth)."""
FFN_OF = {"relu": "relu", "silu": "swiglu"}  # DecoderShape.ffn of each activation


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything that determines a run's numbers (model shape, data, optimiser, measurement)."""

    steps: int = 400
    seed: int = 0
    dim: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    ffn_hidden: int = 352  # ~8/3 * dim rounded to a multiple of 32, as Llama sizes its gated MLP
    seq_len: int = 128
    batch: int = 8
    # AdamW with linear warmup and cosine decay to a tenth: GPT-3's schedule (Brown et al. 2020, sec. 2.3 / app. B)
    lr: float = 2e-3
    warmup_steps: int = 30
    weight_decay: float = 0.1
    checkpoints: int = 8
    eval_tokens: int = 4096
    cett: float = 0.2
    threads: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int):
                if isinstance(value, bool) or not isinstance(value, int) or value < (0 if f.name == "seed" else 1):
                    kind = "a non-negative" if f.name == "seed" else "a positive"
                    raise arg_error(f.name, f"must be {kind} integer, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise arg_error(f.name, f"must be a finite number, got {value!r}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise arg_error("lr" if self.lr <= 0 else "weight_decay", "must be positive")
        if not 0 < self.cett < 1:
            raise arg_error("cett", f"must be between 0 and 1 (exclusive), got {self.cett!r}")
        if self.dim % self.heads or self.heads % self.kv_heads or (self.dim // self.heads) % 2:
            raise arg_error("heads", f"dim={self.dim}, heads={self.heads}, kv_heads={self.kv_heads}: need heads | dim, "
                            "kv_heads | heads and an even head size")
        if self.eval_tokens < self.seq_len:
            raise arg_error("eval_tokens", f"must be at least seq_len={self.seq_len}, got {self.eval_tokens}")

    def key(self) -> str:
        """A short hash of the settings (the cache key of the trained model)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def shape(settings: Settings, activation: str):
    """The :class:`DecoderShape` trained for ``activation`` (``relu`` or ``silu``)."""
    from sparsesim.workloads.llm_networks import DecoderShape

    if activation not in FFN_OF:
        raise arg_error("activation", f"unknown activation {activation!r} (choose from {', '.join(ACTIVATIONS)})")
    s = settings
    return DecoderShape(name=f"pydoc_{activation}_lm",
                        summary=f"byte-level decoder trained on pydoc text ({activation})",
                        vocab=256, dim=s.dim, layers=s.layers, heads=s.heads, kv_heads=s.kv_heads,
                        ffn_hidden=s.ffn_hidden, ffn=FFN_OF[activation])


def split_text() -> tuple[bytes, bytes, str]:
    """The training and held-out bytes of the corpus's evaluation part, and that part's SHA-256."""
    from sparsesim.workloads.corpus import corpus_part

    part = corpus_part("eval")
    paragraphs = part.text.split("\n\n")
    held = [p for i, p in enumerate(paragraphs) if i % HELDOUT_EVERY == HELDOUT_AT]
    seen = set(held)  # a paragraph repeated elsewhere in the part (a code line, a note) stays unseen
    train = [p for i, p in enumerate(paragraphs) if i % HELDOUT_EVERY != HELDOUT_AT and p not in seen]
    return "\n\n".join(train).encode("utf-8"), "\n\n".join(held).encode("utf-8"), part.sha256


def checkpoint_steps(steps: int, count: int) -> list[int]:
    """``count`` steps spaced evenly in log(step) from 1 to ``steps`` (fewer if they coincide)."""
    if count == 1 or steps == 1:
        return [steps]
    return sorted({max(1, round(steps ** (k / (count - 1)))) for k in range(count)})


def positive_fraction(gate_out) -> float:
    """Fraction of the gate outputs ``act(gate(x))`` that are > 0 (the ReLU activation ratio)."""
    return float((gate_out > 0).float().mean())


def cett_ratio(a, w_down, cett: float, iters: int = 14) -> float:
    """Fraction of neurons kept active under the CETT rule (module docstring).

    ``a``: ``(tokens, ffn)`` inputs of ``down``; ``w_down``: ``(dim, ffn)``. A neuron is inactive
    when ``|a_ti| * ||W_down[:, i]||`` is below one threshold, the largest whose mean CETT over the
    tokens is at most ``cett``; the threshold is bisected over the sorted magnitudes (``iters``
    halvings of the candidate range, so the ratio is exact to ``1 / 2**iters``).
    """
    import torch

    mag = a.abs() * w_down.norm(dim=0)
    full = a @ w_down.T
    norm = full.norm(dim=1).clamp_min(1e-30)
    flat = mag.flatten().sort().values
    lo, hi = 0, flat.numel()  # truncating the lo smallest is within tolerance; hi is not known to be

    def mean_cett(k: int) -> float:
        if k == 0:
            return 0.0
        eps = flat[k - 1]
        tail = torch.where(mag <= eps, a, torch.zeros_like(a)) @ w_down.T
        return float((tail.norm(dim=1) / norm).mean())

    if mean_cett(hi) <= cett:
        return 0.0
    for _ in range(iters):
        if hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        if mean_cett(mid) <= cett:
            lo = mid
        else:
            hi = mid
    return 1.0 - lo / flat.numel()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One measurement of one run."""

    activation: str
    step: int
    tokens_seen: int
    activation_ratio: float  # ReLU: positive_fraction; SiLU: cett_ratio
    positive_fraction: float
    cett_ratio: float
    eval_perplexity: float
    train_loss: float  # mean cross-entropy (nats/byte) of the last training step before the checkpoint
    layer_ratios: tuple[float, ...]  # activation_ratio of each layer


def _logits(model, tokens):
    """Logits at every position (the capture model's forward returns only the last one)."""
    import torch

    from sparsesim.workloads.capture.llama import rotary_tables

    cos, sin = rotary_tables(torch.arange(tokens.shape[1]), model.shape.head_dim, model.shape.rope_theta)
    cache = model.new_cache()  # fresh per call: every window starts at position 0
    x = model.model.embed_tokens(tokens)
    for layer in model.model.layers:
        x = layer(x, cos, sin, cache, 0)
    return model.lm_head(model.model.norm(x))


def _windows(data: bytes, seq_len: int, limit: int):
    """Consecutive non-overlapping ``seq_len + 1``-byte windows of ``data`` (at most ``limit`` tokens)."""
    import torch

    n = min(limit // seq_len, (len(data) - 1) // seq_len)
    if n < 1:
        raise arg_error("seq_len", f"{seq_len} is longer than the held-out text ({len(data)} bytes)")
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
    return torch.stack([t[i * seq_len: i * seq_len + seq_len + 1] for i in range(n)])


def measure(model, held, settings: Settings, activation: str) -> tuple[float, list[float], list[float], list[float]]:
    """Perplexity on the held-out windows ``held`` and, per layer, the positive fraction, the CETT
    ratio and the activation ratio of the MLP."""
    import torch
    import torch.nn.functional as F

    inputs: list = [None] * len(model.model.layers)
    hooks = [layer.mlp.register_forward_hook(lambda m, args, out, i=i: inputs.__setitem__(i, args[0].detach()))
             for i, layer in enumerate(model.model.layers)]
    try:
        with torch.no_grad():
            logits = _logits(model, held[:, :-1])
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), held[:, 1:].reshape(-1))
    finally:
        for h in hooks:
            h.remove()
    pos, cett = [], []
    with torch.no_grad():
        for layer, x in zip(model.model.layers, inputs):
            mlp = layer.mlp
            x = x.reshape(-1, x.shape[-1])
            g = mlp.act(mlp.gate_proj(x))
            pos.append(positive_fraction(g))
            cett.append(cett_ratio(g * mlp.up_proj(x), mlp.down_proj.weight, settings.cett))
    ratios = pos if activation == "relu" else cett
    return math.exp(float(nll)), pos, cett, ratios


def train(settings: Settings, activation: str, held, train_bytes: bytes, progress=None):
    """Train one model; returns it and its checkpoints (``progress(activation, step)`` is called per step)."""
    import torch
    import torch.nn.functional as F

    from sparsesim.workloads.capture.llama import build

    s = settings
    if len(train_bytes) <= s.seq_len + 1:
        raise arg_error("seq_len", f"{s.seq_len} is longer than the training text ({len(train_bytes)} bytes)")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(s.threads)
    try:
        model = build(shape(s, activation), torch.Generator().manual_seed(s.seed)).train()
        data = torch.frombuffer(bytearray(train_bytes), dtype=torch.uint8).long()
        order = torch.Generator().manual_seed(s.seed + 1)  # the windows: the same for both activations
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        rest = [p for n, p in model.named_parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": rest, "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=s.lr, betas=(0.9, 0.95))

        def lr_at(step: int) -> float:  # step counts from 1
            if step <= s.warmup_steps:
                return s.lr * step / s.warmup_steps
            frac = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
            return s.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

        marks = set(checkpoint_steps(s.steps, s.checkpoints))
        points: list[Checkpoint] = []
        for step in range(1, s.steps + 1):
            starts = torch.randint(0, data.numel() - s.seq_len - 1, (s.batch,), generator=order)
            window = torch.stack([data[i: i + s.seq_len + 1] for i in starts.tolist()])
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            logits = _logits(model, window[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, 256), window[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if progress:
                progress(activation, step)
            if step in marks:
                model.eval()
                ppl, pos, cett, ratios = measure(model, held, s, activation)
                model.train()
                points.append(Checkpoint(
                    activation=activation, step=step, tokens_seen=step * s.batch * s.seq_len,
                    activation_ratio=sum(ratios) / len(ratios), positive_fraction=sum(pos) / len(pos),
                    cett_ratio=sum(cett) / len(cett), eval_perplexity=ppl, train_loss=float(loss.detach()),
                    layer_ratios=tuple(ratios)))
        return model.eval(), points
    finally:
        torch.set_num_threads(old_threads)


def cache_dir() -> Path:
    """Where trained models are kept: ``$XDG_CACHE_HOME/sparsesim/training-dynamics`` (default ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sparsesim" / "training-dynamics"


def weights_path(settings: Settings, cache: Path | None = None) -> Path:
    """The safetensors file of the trained ReLU model of ``settings``."""
    return (cache or cache_dir()) / f"pydoc_relu_lm-{settings.key()}.safetensors"


def save_model(model, settings: Settings, path: Path, sha256: str) -> Path:
    """Write ``model``'s weights with its settings and text hash as safetensors metadata."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"settings": json.dumps(asdict(settings), sort_keys=True), "text_sha256": sha256, "activation": "relu"}
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp), metadata=meta)
    tmp.replace(path)  # a reader never sees a half-written file
    return path


def trained_relu_decoder(settings: Settings | None = None, cache: Path | None = None):
    """The ReLU decoder trained with ``settings`` (default :class:`Settings`), from the cache or
    trained now (a few minutes) and cached. Returns the model in eval mode; its
    ``forward(tokens, cache)`` is the capture model's (last position's logits, KV cache)."""
    import torch
    from safetensors.torch import load_file

    settings = settings or Settings()
    path = weights_path(settings, cache)
    if path.exists():
        from sparsesim.workloads.capture.llama import build

        model = build(shape(settings, "relu"), torch.Generator().manual_seed(settings.seed))
        model.load_state_dict(load_file(str(path)))
        return model.eval()
    train_bytes, held_bytes, sha = split_text()
    held = _windows(held_bytes, settings.seq_len, settings.eval_tokens)
    model, _ = train(settings, "relu", held, train_bytes)
    save_model(model, settings, path, sha)
    return model


@dataclass(frozen=True, slots=True)
class Data:
    """What the study measured."""

    table: pd.DataFrame  # one row per (activation, checkpoint)
    settings: Settings
    train_bytes: int
    heldout_bytes: int
    eval_tokens: int
    text_sha256: str
    weights: Path | None  # the cached ReLU model
    params: int  # parameters of one model (both have the same)


def to_frame(points: list[Checkpoint]) -> pd.DataFrame:
    """The checkpoints as a table, one ``layer{i}_ratio`` column per layer."""
    rows = []
    for p in points:
        row = {f.name: getattr(p, f.name) for f in fields(p) if f.name != "layer_ratios"}
        row.update({f"layer{i}_ratio": r for i, r in enumerate(p.layer_ratios)})
        rows.append(row)
    return pd.DataFrame(rows)


def compute(settings: Settings | None = None, *, cache: Path | None = None, save: bool = True) -> Data:
    """Train both models and measure them at every checkpoint; caches the final ReLU model."""
    settings = settings or Settings()
    train_bytes, held_bytes, sha = split_text()
    held = _windows(held_bytes, settings.seq_len, settings.eval_tokens)
    points, weights, params = [], None, 0
    for activation in ACTIVATIONS:
        log.info("training the %s decoder for %d steps", activation, settings.steps)
        model, pts = train(settings, activation, held, train_bytes)
        points += pts
        params = sum(p.numel() for p in model.parameters())
        if activation == "relu" and save:
            weights = save_model(model, settings, weights_path(settings, cache), sha)
    return Data(table=to_frame(points), settings=settings, train_bytes=len(train_bytes),
                heldout_bytes=len(held_bytes), eval_tokens=int(held[:, 1:].numel()), text_sha256=sha, weights=weights,
                params=params)


def plot(data: Data, out: Path) -> Path:
    """The figure: activation ratio and held-out perplexity against the tokens seen."""
    from sparsesim import plots

    return plots.plot_training_dynamics(data.table, out / "activation_ratio.png",
                                        title="Training on pydoc text: MLP activation ratio, ReLU vs SiLU")


def _direction(first: float, last: float) -> str:
    return "rose" if last > first else "fell" if last < first else "stayed"


def write(data: Data, fig: Path | None = None) -> str:
    """The report text; every sentence is computed from ``data.table``."""
    t, s = data.table, data.settings
    by = {a: t[t["activation"] == a].sort_values("step") for a in ACTIVATIONS}
    relu, silu = by["relu"], by["silu"]
    r0, r1 = relu["activation_ratio"].iloc[0], relu["activation_ratio"].iloc[-1]
    s0, s1 = silu["activation_ratio"].iloc[0], silu["activation_ratio"].iloc[-1]
    tok0, tok1 = int(relu["tokens_seen"].iloc[0]), int(relu["tokens_seen"].iloc[-1])
    holds = r1 < r0 and s1 > s0
    # the same claim over the second half of the log-spaced checkpoints, past the early fluctuations
    half = len(relu) // 2
    holds_late = (relu["activation_ratio"].iloc[-1] < relu["activation_ratio"].iloc[half]
                  and silu["activation_ratio"].iloc[-1] > silu["activation_ratio"].iloc[half])
    ppl_r, ppl_s = relu["eval_perplexity"].iloc[-1], silu["eval_perplexity"].iloc[-1]
    cett_r, cett_s = relu["cett_ratio"].iloc[-1], silu["cett_ratio"].iloc[-1]
    layer_cols = [c for c in t.columns if c.startswith("layer") and c.endswith("_ratio")]
    final_layers = ", ".join(f"{relu[c].iloc[-1]:.1%}" for c in layer_cols)
    params = data.params
    lines = [
        "# Training dynamics: MLP activation ratio of a decoder trained on real text, ReLU vs SiLU",
        "",
        "Regenerate with `sparsesim study training-dynamics --out reports/training-dynamics"
        + (" --quick" if Settings(steps=s.steps, seed=s.seed) != s else "")
        + (f" --steps {s.steps}" if s.steps != Settings().steps else "")
        + (f" --seed {s.seed}" if s.seed != Settings().seed else "") + "`.",
        "",
        f"Two byte-level Llama-style decoders ({s.layers} layers, d={s.dim}, {s.heads} heads / {s.kv_heads} KV heads, "
        f"gated MLP of {s.ffn_hidden}, {params:,} parameters) were trained from the same initial weights (seed "
        f"{s.seed}) on the same {s.steps} batches of {s.batch} x {s.seq_len} bytes "
        f"({s.steps * s.batch * s.seq_len:,} tokens), one with ReLU and one with SiLU in the MLP's gate. "
        f"The training text is the built-in corpus's evaluation part (SHA-256 `{data.text_sha256[:16]}...`) without "
        f"every tenth paragraph and of any copy of one ({data.train_bytes:,} bytes); those held-out paragraphs "
        f"({data.heldout_bytes:,} bytes) "
        f"give the {data.eval_tokens:,} evaluation tokens. The calibration part was not used.",
        "",
        "The activation ratio of the ReLU model is the fraction of gate outputs above zero; the SiLU model, which "
        f"has no exact zeros, counts a neuron active when its output norm is above the per-layer threshold that "
        f"keeps the mean CETT at or below {s.cett:g} (see the module docstring; the column `cett_ratio` applies "
        "that rule to both models).",
        "",
        f"![activation ratio and perplexity against tokens seen]({fig.name if fig else 'activation_ratio.png'})",
        "",
        "## What the table shows",
        "",
        f"- The ReLU model's activation ratio {_direction(r0, r1)} from {r0:.1%} to {r1:.1%} between {tok0:,} and "
        f"{tok1:,} tokens seen; the SiLU model's {_direction(s0, s1)} from {s0:.1%} to {s1:.1%}.",
        f"- Sparsing Law's claim (the ReLU model's ratio falls with training data while the SiLU model's rises) "
        f"{'holds' if holds else 'does not hold'} at this scale over all checkpoints, and "
        f"{'holds' if holds_late else 'does not hold'} over the second half of them (from "
        f"{int(relu['tokens_seen'].iloc[half]):,} tokens, comparing its first and last checkpoint; between them the "
        f"ReLU model's ratio {trend(relu['activation_ratio'].iloc[half:])} and the SiLU model's "
        f"{trend(silu['activation_ratio'].iloc[half:])}, its lowest at "
        f"{int(silu['tokens_seen'].iloc[half:].iloc[silu['activation_ratio'].iloc[half:].argmin()]):,} tokens).",
        f"- Under the same CETT rule the final ReLU model keeps {cett_r:.1%} of its neurons active and the SiLU "
        f"model {cett_s:.1%}: the ReLU model is {'sparser' if cett_r < cett_s else 'not sparser'}.",
        f"- The Lazy Neuron paper reports very sparse MLP activations in trained Transformers; here the final ReLU "
        f"model has {relu['positive_fraction'].iloc[-1]:.1%} of its gate outputs non-zero (per layer: {final_layers}).",
        f"- Held-out perplexity (per byte) reached {ppl_r:.2f} with ReLU and {ppl_s:.2f} with SiLU "
        f"(from {relu['eval_perplexity'].iloc[0]:.1f} and {silu['eval_perplexity'].iloc[0]:.1f} at the first "
        f"checkpoint); the ReLU model's is {abs(ppl_r / ppl_s - 1):.1%} {'higher' if ppl_r > ppl_s else 'lower'}.",
        "",
        "## Table (`table.csv`)",
        "",
        md_table(t, {"activation": "activation", "tokens_seen": "tokens seen", "activation_ratio": "activation ratio",
                     "positive_fraction": "gate > 0", "cett_ratio": f"CETT {s.cett:g} ratio",
                     "eval_perplexity": "held-out perplexity"},
                 {"activation_ratio": ".3f", "positive_fraction": ".3f", "cett_ratio": ".3f",
                  "eval_perplexity": ".2f"}),
        "",
    ]
    if data.weights:
        lines += [f"The final ReLU model is cached as `{data.weights.name}` (safetensors) under "
                  "`$XDG_CACHE_HOME/sparsesim/training-dynamics`; "
                  "`sparsesim.studies.training_dynamics.trained_relu_decoder()` loads it.", ""]
    return "\n".join(lines)


def run(out: Path, traces: Path, quick: bool, *, steps: int | None = None, seed: int | None = None) -> Path:
    """Regenerate the report in ``out`` (``traces`` is unused: this study captures nothing)."""
    base = Settings(steps=24, dim=32, layers=2, ffn_hidden=64, seq_len=32, batch=4, warmup_steps=4,
                    checkpoints=4, eval_tokens=256) if quick else Settings()
    overrides = {k: v for k, v in (("steps", steps), ("seed", seed)) if v is not None}
    settings = Settings(**{**asdict(base), **overrides})
    data = compute(settings)
    fig = plot(data, out)
    return write_report(out, write(data, fig), {"table.csv": data.table})


STUDIES.add("training-dynamics", Study("training-dynamics", "ReLU vs SiLU decoder trained on pydoc text: activation "
                                       "ratio and perplexity vs tokens seen", run, options=("steps", "seed")))
