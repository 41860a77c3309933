"""`tinygpt train` (a model on prepared shards) and `tinygpt eval` (a trained run's checkpoint)."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys

from tinygpt.cli.flags import (add_batch_size, add_data, add_device, add_dtype, add_json, add_model, add_out,
                               add_quiet, add_reference, add_run, add_seed, add_seq_len, add_threads, add_which,
                               count, flag_words, key_value)

TRAIN_DESCRIPTION = (
    "Trains a GPT on the shards `tinygpt prepare` wrote. AdamW, linear warmup then cosine decay, "
    "periodic evaluation (loss, perplexity, bits per byte), checkpoints in RUN/latest (resumable) and "
    "RUN/best (lowest validation loss), RUN/metrics.jsonl and RUN/loss.png.\n\n"
    "Stops after --steps, --tokens or --time-budget, whichever comes first (default: one pass over the "
    "training tokens). Ctrl-C (or SIGTERM) stops after the current step and saves; --resume continues "
    "exactly. Data-parallel: torchrun --nproc_per_node=N -m tinygpt train ...")
# args that are not TrainConfig settings
_NOT_SETTINGS = ("func", "command", "config", "resume", "model_set")


def add_parser(sub) -> None:
    _add_train(sub)
    _add_eval(sub)


def _add_train(sub) -> None:
    from tinygpt.model import PRESETS
    from tinygpt.training import TrainConfig

    d = TrainConfig()
    # SUPPRESS: only the flags given are set, so that they override --config and nothing else does
    tr = sub.add_parser("train", help="train a model on prepared shards", argument_default=argparse.SUPPRESS,
                        formatter_class=argparse.RawDescriptionHelpFormatter, description=TRAIN_DESCRIPTION)
    tr.add_argument("--config", metavar="FILE",
                    help="a .json or .toml file of settings (keys as these flags); flags win")
    add_data(tr, help="prepared shard directory (from `tinygpt prepare`)")
    add_out(tr, metavar="RUN", required=False, help="run directory for checkpoints, metrics and the plot")
    tr.add_argument("--resume", action="store_true", help="continue the run in RUN from its last checkpoint")
    add_model(tr, choices=list(PRESETS), metavar="PRESET",
              help=f"model preset: {', '.join(PRESETS)} (default {d.model})")
    tr.add_argument("--model-set", action="append", type=key_value, metavar="KEY=VALUE",
                    help="change one field of the preset's GPTConfig, e.g. --model-set n_layers=4 (repeatable)")
    _add_how_long(tr.add_argument_group("how long"))
    _add_optimizer(tr.add_argument_group("batch and optimizer"), d)
    _add_hardware(tr.add_argument_group("hardware"))
    _add_logging(tr.add_argument_group("evaluation, checkpoints, logs"), d)
    tr.set_defaults(func=train_command)


def _add_how_long(g) -> None:
    g.add_argument("--steps", type=count, help="optimizer steps")
    g.add_argument("--tokens", type=count, help="training tokens (e.g. 20M)")
    g.add_argument("--time-budget", metavar="DURATION", help="wall-clock budget, e.g. 90s, 10m, 1.5h; the "
                   "learning rate decays over it")


def _add_optimizer(g, d) -> None:
    add_batch_size(g, help=f"sequences per micro-batch (default {d.batch_size})")
    add_seq_len(g, help="tokens per sequence (default: min(256, the model's max_seq_len))")
    g.add_argument("--grad-accum", type=int, help="micro-batches per step, counted over all processes "
                   "(default: one per process)")
    g.add_argument("--lr", type=float, help=f"peak learning rate (default {d.lr:g})")
    g.add_argument("--min-lr", type=float, help="final learning rate of the cosine decay (default lr / 10)")
    g.add_argument("--warmup", type=int, help=f"linear warmup steps (default {d.warmup})")
    g.add_argument("--weight-decay", type=float,
                   help=f"AdamW weight decay of the matrices (default {d.weight_decay:g})")
    g.add_argument("--dropout", type=float, help="dropout on the embeddings and residual branches while training; "
                   f"helps small corpora (default {d.dropout:g})")
    g.add_argument("--grad-clip", type=float, help=f"clip the gradient norm to this; 0: off (default {d.grad_clip:g})")
    g.add_argument("--beta1", type=float, help=f"AdamW beta1 (default {d.beta1:g})")
    g.add_argument("--beta2", type=float, help=f"AdamW beta2 (default {d.beta2:g})")
    add_seed(g, help=f"seed of the initial weights and the data order (default {d.seed})")


def _add_hardware(g) -> None:
    add_dtype(g, help="bf16 autocast with fp32 master weights, or fp32; auto: bf16 where the hardware has it "
              "(CUDA, or a CPU with AVX512-BF16)")
    add_device(g, help="auto (default: cuda if present), cpu, cuda or cuda:N; on CUDA, tinygpt's "
               "kernels run only with TINYGPT_CUDA_KERNELS=1 (else torch's ops)")
    add_threads(g, help="CPU threads (default: torch's choice, which honours OMP_NUM_THREADS)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    add_reference(g, help="use the plain PyTorch ops instead of the fused kernels")


def _add_logging(g, d) -> None:
    g.add_argument("--eval-every", type=int, help=f"evaluate every N steps, and at the end (default {d.eval_every})")
    g.add_argument("--eval-tokens", type=count,
                   help=f"validation tokens per evaluation, at most (default {d.eval_tokens})")
    g.add_argument("--save-every", type=int, help="checkpoint every N steps, and at the end (default: --eval-every)")
    g.add_argument("--log-every", type=int, help=f"write a metrics record every N steps (default {d.log_every})")
    add_quiet(g, help="no progress bar or messages")


def _add_eval(sub) -> None:
    from tinygpt.training.evaluate import evaluate_run

    d = {k: v.default for k, v in inspect.signature(evaluate_run).parameters.items()}
    ev = sub.add_parser("eval", help="evaluate a trained run: loss, perplexity, bits per byte",
                        description="Evaluates a run's checkpoint on the validation split of prepared shards (by "
                        "default the run's own) or on the stories of a text file.")
    add_run(ev)
    src = ev.add_mutually_exclusive_group()
    add_data(src, help="prepared shards whose val.bin to use (default: the run's data)")
    src.add_argument("--text", metavar="FILE", help="story file(s) to evaluate on (.txt, .json, .jsonl, .gz)")
    add_which(ev, default=d["which"], help="best (lowest validation loss, default) or latest checkpoint")
    add_batch_size(ev, default=d["batch_size"], help=f"sequences per batch (default {d['batch_size']})")
    add_seq_len(ev, default=d["seq_len"], help="tokens per window (default: the run's training length)")
    ev.add_argument("--max-tokens", type=count, default=d["max_tokens"],
                    help="evaluate at most this many tokens (default: all)")
    add_device(ev, default=d["device"])
    add_dtype(ev, choices=["fp32", "bf16"], default=d["dtype"], help="fp32 (default) or bf16 autocast")
    add_reference(ev)
    add_json(ev, help="print the figures as JSON")
    ev.set_defaults(func=eval_command)


def _train_settings(args) -> dict:
    """train()'s keywords: --config's, overridden by the flags given."""
    from tinygpt.training import load_config_file

    settings = load_config_file(args.config) if getattr(args, "config", None) else {}
    given = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    if "quiet" in given:
        given["progress"] = not given.pop("quiet")
    if "reference" in given:
        given["fused"] = not given.pop("reference")
    settings.update(given)
    if getattr(args, "model_set", None):
        settings["model_overrides"] = {**settings.get("model_overrides", {}), **dict(args.model_set)}
    return settings


def _check_settings(settings: dict) -> None:
    """The training library's checks of each value (`config.check_settings`), run before any work
    so that an error names the flag: `seed must be ...` is `--seed must be ...` here."""
    from tinygpt.training import config

    names = [*config.INTEGERS, *config.REALS, "min_lr", "dtype", "device"]
    with flag_words({**{n: "--" + n.replace("_", "-") for n in names}, "model_overrides": "--model-set"}):
        config.check_settings(settings)


def train_command(args) -> int:
    from tinygpt.training import TrainingDiverged, train as run_training

    settings = _train_settings(args)
    _check_settings(settings)
    try:
        summary = run_training(resume=getattr(args, "resume", False), **settings)
    except TrainingDiverged as e:
        print(f"tinygpt: {e}", file=sys.stderr)
        return 3
    if summary["world_size"] > 1 and int(os.environ.get("RANK", "0")) != 0:
        return 0
    val = summary["val"]
    line = (f"{summary['stopped']} after {summary['steps']:,} steps, {summary['tokens_seen']:,} tokens, "
            f"{summary['elapsed_s']:.0f} s ({summary['train_tokens_per_s']:,.0f} tokens/s)")
    if val:
        line += f"; val loss {val['loss']:.4f}, {val['bpb']:.4f} bits per byte"
    print(line)
    print(f"run: {summary['run']} (latest/, best/, metrics.jsonl, loss.png)")
    if summary["stopped"] == "interrupted":
        print(f"interrupted: continue with  tinygpt train --out {summary['run']} --resume")
        return 130
    return 0


def eval_command(args) -> int:
    from tinygpt.training.evaluate import evaluate_run

    res = evaluate_run(args.run, data=args.data, text=args.text, which=args.which, batch_size=args.batch_size,
                       seq_len=args.seq_len, max_tokens=args.max_tokens, device=args.device, dtype=args.dtype,
                       fused=not args.reference)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{res['checkpoint']} (step {res['step']}) on {res.get('data') or res.get('text')}: "
              f"loss {res['loss']:.4f}, perplexity {res['perplexity']:.3f}, {res['bpb']:.4f} bits per byte "
              f"({res['tokens']:,} tokens, {res['bytes']:,} bytes)")
    return 0
