"""``sparsesim codesign``: per sparsity setting, what the model loses beside what the hardware gains.

For each setting (one or more features as ``run --sparsity`` takes them, joined with ``+``):

1. **Calibrate** (``calibrate=prefill`` policies): thresholds per MLP block from the dense model's
   gate outputs on the calibration text (:func:`~.transform.calibrate`), never the evaluation text.
2. **Quality**: the evaluation text run through the model with the setting applied in the
   forward pass (:class:`~.transform.ForwardTransform`), against the dense model on the same
   tokens (:mod:`.quality`): perplexity and next-token agreement.
3. **Trace**: the same transformed model captured (``prefill`` of ``prompt_len`` tokens of the
   evaluation text, or that prefill and ``gen_len`` greedy decode steps), so later layers see the
   activations the sparsified earlier layers produced, as they do in the quality run. The trace
   carries the calibrated thresholds (``capture.gate_thresholds``), which the replay then uses.
4. **Replay** of that trace with the setting on each preset: the run's total.
5. **Mask check**: every Linear op's input zero fraction as the transformed forward computed with
   it must equal the replay row's ``act_zero_fraction``, call by call; a setting whose two paths
   diverge is refused (``error:``), never reported.

The dense model is evaluated, captured and replayed once, as the baseline each setting's
``speedup`` and ``energy_saved`` are relative to. Traces are written under ``work_dir`` (a
temporary folder by default) and deleted after their replay unless ``keep_traces``.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparsesim.core.errors import InputError, arg_error
from sparsesim.sparsity import cli_sparsity, feature_labels, parse_features

MODES = ("prefill", "decode", "train")


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting as given (``text``) and its parsed features."""

    text: str
    features: tuple

    @classmethod
    def parse(cls, text: str, field: str = "--sparsity") -> Setting:
        text = text.strip()
        if text in ("", "dense"):
            return cls("dense", ())
        return cls(text, parse_features(tuple(cli_sparsity(text.split("+"), field))))

    @property
    def policy(self):
        return next((f for f in self.features if f.kind == "act_policy"), None)


def _progress(callback, message: str) -> None:
    if callback is not None:
        callback(message)


def load_model(model: str | None, hf_dir: str | Path | None, gguf: str | Path | None):
    """``(hf model, tokenizer, record)`` from a pretrained zoo name, a local HF directory or a GGUF file."""
    if sum(x is not None for x in (model, hf_dir, gguf)) != 1:
        raise InputError("codesign: give exactly one of --model NAME, --hf DIR or --gguf FILE")
    from sparsesim.workloads.capture import pretrained

    from sparsesim.workloads.capture.user_model import parse_model_ref

    if model is not None and (ref := parse_model_ref(model)) is not None:
        return _user_model(ref)
    if model is not None:
        if model not in pretrained.PRETRAINED:
            raise arg_error("model", f"{model!r} is not a pretrained model (choose from "
                                     f"{', '.join(pretrained.PRETRAINED.names())}, or give --hf DIR / --gguf FILE)")
        loaded = pretrained.load_pretrained(model)
        return loaded.model, loaded.tokenizer, {**loaded.record(), "kind": loaded.entry.kind}
    tf = pretrained._transformers()
    path = Path(hf_dir if hf_dir is not None else gguf)
    flag = "hf" if hf_dir is not None else "gguf"
    if hf_dir is not None and not (path / "config.json").is_file():
        raise arg_error(flag, f"{path}: no config.json (expected a save_pretrained directory)")
    if gguf is not None and not path.is_file():
        raise arg_error(flag, f"{path}: no such file")
    kwargs = {"local_files_only": True} if hf_dir is not None else {"gguf_file": path.name}
    where = path if hf_dir is not None else path.parent
    try:
        model_obj = tf.AutoModelForCausalLM.from_pretrained(where, attn_implementation="eager", **kwargs)
        tokenizer = tf.AutoTokenizer.from_pretrained(where, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise arg_error(flag, f"{path}: cannot load ({line})") from None
    return model_obj.float().eval(), tokenizer, {"model": path.name, "source": flag, "path": str(path)}


def _user_model(ref):
    """``--model FILE.py:NAME``: ``NAME`` returns a dict with ``model``, a Hugging Face causal LM
    (``transformers.PreTrainedModel`` with an LM head), and ``tokenizer``; built under seed 0."""
    import torch

    from sparsesim.workloads.capture import pretrained
    from sparsesim.workloads.capture.user_model import build_user_model, find_callable

    tf = pretrained._transformers()
    torch.manual_seed(0)
    user = build_user_model(find_callable(ref), str(ref))
    if not isinstance(user.model, tf.PreTrainedModel) or user.model.get_output_embeddings() is None:
        raise arg_error("model", f"{ref}: codesign needs a Hugging Face causal LM (a transformers PreTrainedModel "
                                 f"with an LM head), got {type(user.model).__name__}")
    if user.tokenizer is None or not callable(user.tokenizer):
        raise arg_error("model", f"{ref}: codesign needs NAME to return a dict with 'model' and 'tokenizer' "
                                 "(the tokenizer that reads the text)")
    return user.model.float().eval(), user.tokenizer, {"model": str(ref), "source": "user", "path": ref.source}


class DecoderSubject:
    """A causal LM: perplexity and next-token agreement on windows of the evaluation text; the
    trace is a prefill of the text's first ``prompt_len`` tokens (then the decode steps)."""

    def __init__(self, model, tokenizer, text, calib_text, spec, *, context: int, eval_tokens, calib_tokens: int):
        from sparsesim.quality.metrics import token_ids, windows

        self.model, self.spec = model, spec
        ids = token_ids(tokenizer, text.text)
        self.windows = windows(ids, context, eval_tokens)
        self.calib_windows = windows(token_ids(tokenizer, calib_text.text), context, calib_tokens, arg="calib_tokens")
        self.calib_token_count = sum(w.shape[1] for w in self.calib_windows)
        if ids.numel() < spec.prompt_len:
            raise arg_error("prompt_len", f"{text.name} has {ids.numel()} tokens, fewer than the prompt's "
                                          f"{spec.prompt_len}")
        self.prompt = ids[:spec.prompt_len].unsqueeze(0)
        self.tokens = sum(w.shape[1] for w in self.windows)
        self.dense = None

    def calibrate(self, policy):
        from sparsesim.quality.transform import calibrate

        return calibrate(self.model, policy, self.calib_windows)

    def fit_predictors(self, thresholds, rank: int):
        from sparsesim.quality.transform import fit_predictors

        return fit_predictors(self.model, thresholds, self.calib_windows, rank)

    def quality(self, dense: dict | None) -> dict:
        from sparsesim.quality.metrics import evaluate

        ev = evaluate(self.model, self.windows)
        if dense is None:
            self.dense = ev
        return {"metric": "perplexity", "value": ev.perplexity, "dense": self.dense.perplexity, "tokens": self.tokens,
                "predictions": ev.predictions, "loss_ratio": ev.perplexity / self.dense.perplexity,
                "next_token_agreement": ev.agreement(self.dense)}

    @staticmethod
    def describe(quality: dict) -> str:
        return f"perplexity {quality['value']:.3f} over {quality['predictions']} predictions"

    def capture(self, name: str, out: Path, extra: dict) -> None:
        from sparsesim.workloads.capture.hf import capture_hf_model

        capture_hf_model(self.model, name, out, self.spec, extra, overwrite=True, progress=False, prompt=self.prompt)


class EncoderSubject:
    """A sentence encoder: each sentence of ``pairs`` consecutive-sentence pairs of the evaluation
    text embedded; quality is the embedding's cosine similarity to the dense model's (mean over the
    sentences) and ranking agreement (for each first sentence, whether the second sentence it ranks
    closest is the dense model's choice); the trace is one batch of ``capture_sentences`` of them."""

    calib_token_count = 0

    def __init__(self, model, tokenizer, text, *, pairs: int, capture_sentences: int):
        from sparsesim.workloads.corpus import sentence_pairs

        found = sentence_pairs(text, limit=pairs)
        if len(found) < 2:
            raise arg_error("text", f"{text.name} holds {len(found)} sentence pairs; the encoder needs at least 2")
        self.model, self.tokenizer = model, tokenizer
        self.first = [a for a, _ in found]
        self.second = [b for _, b in found]
        self.batch = tokenizer(self.first[:capture_sentences], padding=True, truncation=True, return_tensors="pt")
        self.tokens = sum(len(t) for t in tokenizer(self.first + self.second)["input_ids"])
        self.dense = None

    def calibrate(self, policy):
        raise InputError("--sparsity: calibrate=prefill acts at a gated MLP's gate; the encoder has none")

    def fit_predictors(self, thresholds, rank: int):
        raise InputError("--sparsity: predictor=trained acts at a gated MLP's gate; the encoder has none")

    def quality(self, dense: dict | None) -> dict:
        from sparsesim.quality.metrics import sentence_embeddings

        a = sentence_embeddings(self.model, self.tokenizer, self.first)
        b = sentence_embeddings(self.model, self.tokenizer, self.second)
        if dense is None:
            self.dense = (a, b)
        da, db = self.dense
        cosine = float(((a * da).sum(1).mean() + (b * db).sum(1).mean()) / 2)
        ranking = float(((a @ b.T).argmax(1) == (da @ db.T).argmax(1)).float().mean())
        return {"metric": "embedding_cosine", "value": cosine, "dense": 1.0, "tokens": self.tokens,
                "sentences": 2 * len(self.first), "ranking_agreement": ranking,
                "pair_cosine": float((a * b).sum(1).mean()), "dense_pair_cosine": float((da * db).sum(1).mean())}

    @staticmethod
    def describe(quality: dict) -> str:
        return (f"embedding cosine {quality['value']:.4f}, ranking agreement {quality['ranking_agreement']:.3f} "
                f"over {quality['sentences']} sentences")

    def capture(self, name: str, out: Path, extra: dict) -> None:
        from sparsesim.workloads.capture.api import capture_model

        capture_model(self.model, (self.batch["input_ids"], self.batch["attention_mask"]), out=out, mode="infer",
                      name=name, overwrite=True, progress=False)


def _weighted_zero_fraction(rows) -> float | None:
    """Zero fraction of every GEMM's A operand (activations), weighted by its elements (M K count)."""
    num = den = 0.0
    for r in rows:
        z = r.get("act_zero_fraction")
        if z is not None and r.get("M") and r.get("K"):
            size = r["M"] * r["K"] * (r.get("count") or 1)
            num, den = num + z * size, den + size
    return num / den if den else None


def setting_row(setting: Setting, accel: str, quality: dict, res, check: dict, dense_totals: dict) -> dict:
    """One ``settings`` entry of the ``--json`` document: the setting's replay ``res`` on ``accel``
    against the dense one (``dense_totals[accel]``, recorded here when ``setting`` is dense)."""
    total = dict(res.total)
    if not setting.features:
        dense_totals[accel] = total
    base = dense_totals[accel]
    return {"sparsity": setting.text, "label": feature_labels(setting.features), "accel": accel, "quality": quality,
            "act_zero_fraction": _weighted_zero_fraction(res.rows),
            "speedup": base["cycles"] / total["cycles"] if total["cycles"] else math.inf,
            "energy_saved": 1.0 - total["energy_pj"] / base["energy_pj"] if base["energy_pj"] else 0.0,
            "mask_check": check, "total": total}


def mask_check(log, rows) -> dict:
    """Compare the transformed forward's per-call input zero fractions (``log``) with the replay's
    ``act_zero_fraction`` of every Linear row, op by op and call by call."""
    replay: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.get("kind") == "linear" and r.get("act_zero_fraction") is not None:
            replay[r["name"]].append(float(r["act_zero_fraction"]))
    worst, compared, first = 0.0, 0, None
    for name, fractions in replay.items():
        mine = log.zero_fractions.get(name, [])
        if len(mine) != len(fractions):
            raise InputError(f"codesign: mask check: {name} ran {len(mine)} times in the forward pass but has "
                             f"{len(fractions)} replay rows")
        for a, b in zip(mine, fractions):
            diff = abs(a - b)
            if diff > worst:
                worst, first = diff, name
            compared += 1
    if worst > 1e-9:
        raise InputError(f"codesign: mask check failed: {first}'s input zero fraction differs by {worst:.3g} "
                         "between the quality forward and the replay")
    return {"ops_compared": compared, "max_abs_diff": worst}


def codesign(model: str | None = "smollm2_135m", *, settings: list[str], accels: list[str], mode: str = "decode",
             prompt_len: int = 256, gen_len: int = 32, text=None, calib_text=None, context: int = 1024,
             eval_tokens: int | None = 4096, calib_tokens: int = 2048, hf_dir=None, gguf=None, dataflow: str = "best",
             work_dir: str | Path | None = None, keep_traces: bool = False, pairs: int = 64,
             capture_sentences: int = 16, train_steps: int = 8, lr: float = 1e-5,
             progress: Callable[[str], None] | None = None) -> dict:
    """Quality and hardware per setting (see the module docstring); returns the ``--json`` document.

    ``text`` / ``calib_text``: :class:`~sparsesim.workloads.corpus.TextPart` (default: the built-in
    evaluation / calibration parts). ``eval_tokens``: evaluate the first that many tokens (None:
    all). ``settings``: strings as ``--sparsity`` takes them, features joined by ``+``; ``dense``
    is the baseline, always run. ``mode="train"``: fine-tune ``train_steps`` steps of ``prompt_len``
    calibration tokens each (AdamW, ``lr``), N:M settings with SAT's BDWP, and replay one more training
    step (:mod:`sparsesim.quality.training`).
    """
    import torch

    from sparsesim import api
    from sparsesim.quality.transform import ForwardTransform, MaskLog, setting_features
    from sparsesim.workloads.capture.inference_spec import InferenceCapture
    from sparsesim.workloads.corpus import corpus_part

    if mode not in MODES:
        raise arg_error("mode", f"unknown codesign mode {mode!r} (choose from {', '.join(MODES)})")
    if not settings:
        raise arg_error("sparsity", "give at least one setting")
    if not accels:
        raise arg_error("accel", "give at least one preset")
    parsed = [Setting.parse(s) for s in settings]
    if mode == "train":
        from sparsesim.quality.training import check_train_args, train_features

        check_train_args(train_steps, lr)  # before minutes of model work
        for setting in parsed:
            train_features(setting.features)
    else:
        for setting in parsed:  # what the forward pass cannot mirror is refused before minutes of model work
            setting_features(setting.features)
    spec = InferenceCapture(mode="prefill" if mode == "train" else mode, prompt_len=prompt_len,
                            gen_len=gen_len if mode == "decode" else 0)
    for accel in accels:  # refuse a bad preset before minutes of model work
        api.accel_config(accel)
    text = corpus_part("eval") if text is None else text
    calib_text = corpus_part("calib") if calib_text is None else calib_text
    if text.sha256 == calib_text.sha256:
        raise arg_error("calib_text", "is the evaluation text; calibrate on other text")

    start = time.perf_counter()
    torch.manual_seed(0)
    hf_model, tokenizer, model_record = load_model(model, hf_dir, gguf)
    _progress(progress, f"loaded {model_record['model']} in {time.perf_counter() - start:.1f} s")
    if mode == "train":
        if model_record.get("kind") == "encoder":
            raise arg_error("mode", "train fine-tunes a causal LM; the encoder has no next-token loss here")
        from sparsesim.quality.training import codesign_train

        root = Path(tempfile.mkdtemp(prefix="sparsesim-codesign-")) if work_dir is None else Path(work_dir)
        root.mkdir(parents=True, exist_ok=True)
        try:
            results = codesign_train(hf_model, tokenizer, model_record, parsed, accels=accels, text=text,
                                     calib_text=calib_text, prompt_len=prompt_len, train_steps=train_steps, lr=lr,
                                     context=context, eval_tokens=eval_tokens, dataflow=dataflow, root=root,
                                     keep_traces=keep_traces, progress=progress)
        finally:
            if work_dir is None and not keep_traces:
                shutil.rmtree(root, ignore_errors=True)
        tokens = results[0]["quality"]["tokens"]
        return {"model": model_record, "mode": "train", "prompt_len": prompt_len, "gen_len": 0, "context": context,
                "train_steps": train_steps, "lr": lr, "text": {**text.record(), "tokens": tokens},
                "calib_text": calib_text.record(), "settings": results, "traces": str(root) if keep_traces else None}
    if model_record.get("kind") == "encoder":
        for setting in parsed:
            if setting.policy is not None and setting.policy.site == "swiglu_gate":
                raise InputError(f"--sparsity: {setting.text}: site swiglu_gate acts at a gated MLP's gate; "
                                 f"{model_record['model']} (an encoder) has none")
        subject = EncoderSubject(hf_model, tokenizer, text, pairs=pairs, capture_sentences=capture_sentences)
    else:
        subject = DecoderSubject(hf_model, tokenizer, text, calib_text, spec, context=context,
                                 eval_tokens=eval_tokens, calib_tokens=calib_tokens)
    dense_quality = subject.quality(None)
    _progress(progress, f"dense: {subject.describe(dense_quality)}")

    root = Path(tempfile.mkdtemp(prefix="sparsesim-codesign-")) if work_dir is None else Path(work_dir)
    root.mkdir(parents=True, exist_ok=True)
    thresholds_cache: dict[str, dict] = {}
    predictors_cache: dict[tuple, object] = {}
    results, dense_totals = [], {}
    try:
        for i, setting in enumerate([Setting("dense", ())] + [s for s in parsed if s.text != "dense"]):
            policy = setting.policy
            thresholds = None
            if policy is not None and policy.calibrate == "prefill":
                label = policy.label()
                if label not in thresholds_cache:
                    thresholds_cache[label] = subject.calibrate(policy)
                thresholds = thresholds_cache[label]
            predictors = None
            if policy is not None and policy.predictor == "trained":
                d = hf_model.config.hidden_size
                key = (policy.label(), policy.rank_for(d))
                if key not in predictors_cache:
                    predictors_cache[key] = subject.fit_predictors(thresholds, policy.rank_for(d))
                    _progress(progress, f"[{setting.text}] fitted rank-{key[1]} predictors on "
                                        f"{subject.calib_token_count} calibration tokens")
                predictors = predictors_cache[key]
            quality_log = MaskLog()
            with ForwardTransform(hf_model, setting.features, thresholds, log=quality_log, predictors=predictors):
                quality = dense_quality if not setting.features else subject.quality(dense_quality)
            if predictors is not None:
                quality = {**quality, "predictor_recall": quality_log.predictor_recall(),
                           "predictor_rank": predictors.rank}
            log = MaskLog()
            trace_dir = root / f"setting{i}"
            extra = {"source": model_record.get("source", "pretrained"), "pretrained": model_record,
                     "prompt": text.record(), "codesign_setting": setting.text}
            if thresholds is not None:
                extra["gate_thresholds"] = {policy.label(): {k: v.tolist() for k, v in thresholds.items()}}
                extra["gate_calibration"] = {**calib_text.record(), "tokens": subject.calib_token_count}
            predictor_file = None
            if predictors is not None:  # written beside the trace's tensors, named in its capture settings
                from sparsesim.workloads.trace.writer import sha256_file

                predictor_file = root / f"predictor{i}.safetensors"
                predictors.save(predictor_file)
                extra["predictors"] = {policy.label(): {"file": "predictor.safetensors", "rank": predictors.rank,
                                                        "sha256": sha256_file(predictor_file),
                                                        "fit": "least-squares gate, calibration text"}}
            with ForwardTransform(hf_model, setting.features, thresholds, log=log, predictors=predictors):
                subject.capture(model_record["model"], trace_dir, extra)
            if predictor_file is not None:
                shutil.move(predictor_file, trace_dir / "predictor.safetensors")
            _progress(progress, f"[{setting.text}] {subject.describe(quality)}; captured "
                                f"{trace_dir.name} ({time.perf_counter() - start:.0f} s)")
            for accel in accels:
                res = api.simulate(api.trace(trace_dir), accel=accel, dataflow=dataflow,
                                   sparsity=list(cli_sparsity(setting.text.split("+"))) if setting.features else [])
                results.append(setting_row(setting, accel, quality, res, mask_check(log, res.rows), dense_totals))
                total = results[-1]["total"]
                _progress(progress, f"[{setting.text}] on {accel}: {total['cycles']:,} cycles "
                                    f"({time.perf_counter() - start:.0f} s)")
            if not keep_traces:
                shutil.rmtree(trace_dir, ignore_errors=True)
    finally:
        if work_dir is None and not keep_traces:
            shutil.rmtree(root, ignore_errors=True)
    return {"model": model_record, "mode": mode if model_record.get("kind") != "encoder" else "encode",
            "prompt_len": prompt_len, "gen_len": spec.gen_len, "context": context,
            "text": {**text.record(), "tokens": dense_quality["tokens"]},
            "calib_text": calib_text.record(), "settings": results,
            "traces": str(root) if keep_traces else None}
