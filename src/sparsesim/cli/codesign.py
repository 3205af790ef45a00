"""``sparsesim codesign``: quality and hardware per sparsity setting, one table (:mod:`sparsesim.codesign`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sparsesim.core.errors import InputError
from sparsesim.core.outputs import check_output_path
from sparsesim.simulation.results import check_writable, write_table

DEFAULTS = {"prompt_len": 256, "gen_len": 32, "context": 1024, "eval_tokens": 4096, "calib_tokens": 2048}


def read_settings(path: Path) -> list[str]:
    """A YAML file holding a list of settings (strings as --sparsity takes them, ``+`` joining features)."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"--settings: {path}: cannot read YAML ({type(exc).__name__})") from None
    if isinstance(raw, dict) and set(raw) == {"settings"}:
        raw = raw["settings"]
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
        raise InputError(f"--settings: {path}: expected a list of setting strings (or settings: [...])")
    return raw


def table(document: dict):
    """The ``--json`` document as one row per (setting, preset), nested keys joined with dots."""
    import pandas as pd

    rows = []
    for s in document["settings"]:
        row = {"model": document["model"]["model"], "mode": document["mode"], "text": document["text"]["name"],
               "text_sha256": document["text"]["sha256"], "calib_text": document["calib_text"]["name"]}
        row.update(pd.json_normalize(s, sep=".").iloc[0].to_dict())
        rows.append(row)
    return pd.DataFrame(rows)


def cmd_codesign(args) -> int:
    from sparsesim.quality import codesign
    from sparsesim.workloads.corpus import text_file

    out = Path(args.out) if args.out else None
    inputs = [("--text", args.text), ("--calib-text", args.calib_text), ("--settings", args.settings),
              ("--hf", args.hf), ("--gguf", args.gguf)]
    if out:
        check_writable(out, args.overwrite, inputs=inputs)
    if args.keep_traces:
        check_output_path(args.keep_traces, field="--keep-traces", kind="dir", inputs=inputs)
    settings = list(args.sparsity or [])
    if args.settings:
        settings += read_settings(Path(args.settings))
    if not settings:
        raise InputError("codesign: give --sparsity SETTING (repeatable) or --settings FILE.yaml")
    if args.mode != "decode" and args.gen_len is not None:
        raise InputError("--gen-len: only with --mode decode")
    if args.mode != "train" and (args.train_steps is not None or args.lr is not None):
        raise InputError(f"--{'train-steps' if args.train_steps is not None else 'lr'}: only with --mode train")
    given = {k: getattr(args, k) for k in DEFAULTS}
    for key, value in given.items():
        if value is not None and value < (0 if key == "eval_tokens" else 1):
            raise InputError(f"--{key.replace('_', '-')}: must be a positive number of tokens, got {value}")
    opts = {k: DEFAULTS[k] if v is None else v for k, v in given.items()}
    model = args.model if args.model or args.hf or args.gguf else "smollm2_135m"
    document = codesign(model, settings=settings, accels=args.accel or ["edge32"], mode=args.mode,
                        prompt_len=opts["prompt_len"], gen_len=opts["gen_len"], context=opts["context"],
                        eval_tokens=opts["eval_tokens"] or None, calib_tokens=opts["calib_tokens"],
                        text=text_file(args.text, "--text") if args.text else None,
                        calib_text=text_file(args.calib_text, "--calib-text") if args.calib_text else None,
                        hf_dir=args.hf, gguf=args.gguf, dataflow=args.dataflow, work_dir=args.keep_traces,
                        keep_traces=args.keep_traces is not None,
                        train_steps=8 if args.train_steps is None else args.train_steps,
                        lr=1e-5 if args.lr is None else args.lr,
                        progress=None if args.no_progress else lambda m: print(f"# {m}", file=sys.stderr))
    if out:
        write_table(table(document), out)
    if args.json:
        print(json.dumps(document, indent=1, default=float, allow_nan=False))
    else:
        print(f"# {document['model']['model']} {document['mode']}: quality on {document['text']['tokens']} tokens "
              f"of {document['text']['name']}, calibrated on {document['calib_text']['name']}")
        print(f"{'setting':60s} {'accel':8s} {'ppl':>9s} {'agree':>6s} {'zeros':>6s} {'speedup':>8s} {'energy':>7s}")
        for s in document["settings"]:
            zeros = "-" if s["act_zero_fraction"] is None else f"{s['act_zero_fraction']:.3f}"
            print(f"{s['sparsity'][:60]:60s} {s['accel']:8s} {s['quality']['value']:9.3f} "
                  f"{s['quality']['next_token_agreement']:6.3f} {zeros:>6s} {s['speedup']:8.3f} "
                  f"{s['energy_saved']:7.1%}")
        if out:
            print(f"# wrote {out}")
    return 0


def add_codesign_command(sub) -> None:
    p = sub.add_parser("codesign", help="what each sparsity setting costs a trained model beside what it gains "
                                        "on the hardware")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="NAME|FILE.py:NAME",
                     help="a pretrained model of the zoo (default smollm2_135m), or your own: FILE.py:NAME or "
                          "package.module:NAME returning {'model': a Hugging Face causal LM, 'tokenizer': ...}")
    src.add_argument("--hf", metavar="DIR", help="a local Hugging Face causal LM directory (save_pretrained)")
    src.add_argument("--gguf", metavar="FILE", help="a GGUF file of a Llama-style decoder (dequantized on load)")
    p.add_argument("--sparsity", action="append", metavar="SETTING",
                   help="one setting, features as `run --sparsity` takes them joined with + "
                        "(e.g. act_policy:threshold:0:site=swiglu_gate:calibrate=prefill:sparsity=0.5); repeatable")
    p.add_argument("--settings", metavar="FILE.yaml", help="a YAML list of settings (added to --sparsity)")
    p.add_argument("--accel", action="append", metavar="PRESET", help="preset(s) to replay on; repeatable "
                                                                      "(default edge32)")
    p.add_argument("--dataflow", default="best", help="dataflow of the replays (default best)")
    p.add_argument("--mode", default="decode", choices=("prefill", "decode", "train"),
                   help="the replayed trace: the prompt's prefill, prefill then --gen-len decode steps, or train: "
                        "fine-tune --train-steps steps (N:M settings with SAT's BDWP) on the calibration text, "
                        "then replay one training step")
    p.add_argument("--prompt-len", type=int, help=f"prompt tokens of the trace; with --mode train, tokens per "
                                                  f"training step (default {DEFAULTS['prompt_len']})")
    p.add_argument("--train-steps", type=int, help="--mode train: fine-tuning steps before the captured one "
                                                   "(default 8)")
    p.add_argument("--lr", type=float, help="--mode train: AdamW learning rate (default 1e-5)")
    p.add_argument("--gen-len", type=int, help=f"decode steps of the trace (default {DEFAULTS['gen_len']})")
    p.add_argument("--text", metavar="FILE", help="evaluation text (default: the built-in corpus' evaluation part)")
    p.add_argument("--calib-text", metavar="FILE",
                   help="calibration text (default: the built-in corpus' calibration part)")
    p.add_argument("--context", type=int, help=f"tokens per evaluation window (default {DEFAULTS['context']})")
    p.add_argument("--eval-tokens", type=int, help=f"evaluate the text's first N tokens (default "
                                                   f"{DEFAULTS['eval_tokens']}; 0: all of it)")
    p.add_argument("--calib-tokens", type=int, help=f"calibration tokens (default {DEFAULTS['calib_tokens']})")
    p.add_argument("--keep-traces", metavar="DIR", help="write the traces to DIR and keep them (default: a "
                                                        "temporary folder, deleted)")
    p.add_argument("--out", metavar="FILE.parquet|.csv", help="write the table")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--json", action="store_true", help='print {"settings": [...], ...}')
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_codesign)
