"""The `tinygpt` command."""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import sys
import time


def _tokenizer_train(args) -> int:
    from tinygpt import Tokenizer

    for p in args.inputs:
        if not os.path.isfile(p):
            print(f"tinygpt: input file not found: {p}", file=sys.stderr)
            return 2
    size = sum(os.path.getsize(p) for p in args.inputs)
    t0 = time.perf_counter()
    tok = Tokenizer.train(
        [os.path.abspath(p) for p in args.inputs],
        args.vocab_size,
        pattern=args.pattern,
        num_threads=args.threads,
        progress=not args.quiet,
    )
    dt = time.perf_counter() - t0
    tok.save(args.out)
    print(
        f"trained a {tok.vocab_size}-token vocabulary on {size / 1e6:.1f} MB in {dt:.2f} s "
        f"-> {args.out}"
    )
    return 0


def _read_text(arg: str | None) -> str:
    return sys.stdin.read() if arg in (None, "-") else arg


def _tokenizer_encode(args) -> int:
    from tinygpt import Tokenizer

    tok = Tokenizer.load(args.tokenizer)
    ids = tok.encode(_read_text(args.text), allowed_special="all")
    print(" ".join(map(str, ids)))
    return 0


def _tokenizer_decode(args) -> int:
    from tinygpt import Tokenizer

    tok = Tokenizer.load(args.tokenizer)
    raw = args.ids if args.ids else sys.stdin.read().split()
    try:
        ids = [int(x) for x in raw]
    except ValueError as e:
        print(f"tinygpt: token ids must be integers ({e})", file=sys.stderr)
        return 2
    sys.stdout.write(tok.decode(ids))
    return 0


def _tokenizer_export(args) -> int:
    from tinygpt import Tokenizer

    tok = Tokenizer.load(args.tokenizer)
    if args.format == "hf":
        tok.to_huggingface(args.out)
    else:
        tt = tok.to_tiktoken()
        with open(args.out, "w", encoding="ascii") as f:
            for t, r in sorted(tt["mergeable_ranks"].items(), key=lambda kv: kv[1]):
                f.write(f"{base64.b64encode(t).decode()} {r}\n")
    print(f"wrote {args.out}")
    return 0


def _stories(args) -> int:
    from tqdm import tqdm

    from tinygpt.data import stories
    from tinygpt.fileio import atomic_write

    if args.count < 0:
        print("tinygpt: error: --count must be >= 0", file=sys.stderr)
        return 2
    fmt = args.format or ("jsonl" if args.out.lower().endswith((".jsonl", ".json")) else "txt")
    if args.out != "-" and os.path.dirname(os.path.abspath(args.out)):
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    t0 = time.perf_counter()
    quiet = args.quiet or args.out == "-"
    out = contextlib.nullcontext(sys.stdout) if args.out == "-" else atomic_write(args.out, newline="\n")
    with out as f, tqdm(total=args.count, unit=" stories", disable=quiet,
                                                 desc="writing stories") as bar:
        for k, st in enumerate(stories.generate(args.count, seed=args.seed)):
            if fmt == "jsonl":
                f.write(stories.story_json(st, prompt_only=args.prompts) + "\n")
            elif args.prompts:
                f.write(st.prompt + "\n")
            else:
                f.write(stories.story_txt(st))
            if k % 1000 == 999:
                bar.update(1000)
        bar.update(args.count - bar.n)
    if not quiet:
        dt = time.perf_counter() - t0
        what = "prompts" if args.prompts else "stories"
        print(f"wrote {args.count} {what} to {args.out} in {dt:.1f} s ({args.count / max(dt, 1e-9):,.0f}/s)",
              file=sys.stderr)
    return 0


def _prepare(args) -> int:
    from tinygpt.data.prepare import prepare

    t0 = time.perf_counter()
    meta = prepare(
        args.inputs, args.out, vocab_size=args.vocab_size, tokenizer=args.tokenizer, val=args.val,
        val_fraction=args.val_fraction, seed=args.seed, pattern=args.pattern, dtype=args.dtype,
        num_threads=args.threads, errors=args.errors, overwrite=args.overwrite, progress=not args.quiet,
    )
    dt = time.perf_counter() - t0
    mb = sum(s["bytes"] for s in meta["splits"].values()) / 1e6
    for sp, line in meta["summary"].items():
        print(f"{sp}: read {line}")
    for sp, s in meta["splits"].items():
        print(f"{sp}.bin: {s['tokens']:,} tokens from {s['stories']:,} stories ({s['bytes'] / 1e6:.1f} MB of text)")
    print(f"vocabulary {meta['vocab_size']} ({meta['dtype']}), tokenizer {meta['tokenizer']['sha256'][:12]}; "
          f"{mb:.1f} MB in {dt:.1f} s ({mb / max(dt, 1e-9):.1f} MB/s) -> {args.out}")
    return 0


def _count(text: str) -> int:
    """An integer, with an optional K/M/B suffix (--tokens 20M)."""
    t = text.strip().upper().replace("_", "").replace(",", "")
    mult = {"K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9}.get(t[-1:], 1)
    try:
        v = float(t[:-1] if mult > 1 else t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (e.g. 5000, 20M)") from None
    if v != int(v):
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(v)


def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def _train(args) -> int:
    from tinygpt.training import TrainingDiverged, load_config_file, train

    settings = load_config_file(args.config) if getattr(args, "config", None) else {}
    given = {k: v for k, v in vars(args).items() if k not in ("func", "command", "config", "resume", "model_set")}
    if "quiet" in given:
        given["progress"] = not given.pop("quiet")
    if "reference" in given:
        given["fused"] = not given.pop("reference")
    settings.update(given)
    if getattr(args, "model_set", None):
        settings["model_overrides"] = {**settings.get("model_overrides", {}), **dict(args.model_set)}
    try:
        summary = train(resume=getattr(args, "resume", False), **settings)
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


def _eval(args) -> int:
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


def _generate(args) -> int:
    import torch

    from tinygpt.training.checkpoint import load_run
    from tinygpt.generate import SamplingSettings, generate
    from tinygpt.threads import configure

    if args.threads is not None:
        configure(args.threads)
    if args.num_samples < 1 or args.batch_size < 1:
        raise ValueError("--num-samples and --batch-size must be >= 1")
    if args.prompt == "-":
        prompts = [line.rstrip("\r\n") for line in sys.stdin]
        if not prompts:
            raise ValueError("--prompt -: no prompts on standard input (one per line)")
    else:
        prompts = [args.prompt]
    settings = dict(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        min_p=args.min_p, repetition_penalty=args.repetition_penalty, frequency_penalty=args.frequency_penalty,
        presence_penalty=args.presence_penalty)
    SamplingSettings(**settings).validate()  # before the model loads
    model, tokenizer = load_run(args.run, args.which, fused=not args.reference)
    texts = [p for p in prompts for _ in range(args.num_samples)]
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(6), "little")
    printer = _StreamPrinter(texts) if args.stream and not args.json else None
    gens = {}

    def finished(i, g):
        gens[i] = g
        if printer:
            printer.finish(i)

    t0 = time.perf_counter()
    outs = generate(model, tokenizer, prompts, num_samples=args.num_samples, seed=seed, batch_size=args.batch_size,
                    dtype=args.dtype, on_text=printer and printer.text, on_finish=finished, **settings)
    dt = time.perf_counter() - t0
    outs = [outs] if isinstance(outs, str) else outs
    n = sum(len(g.ids) for g in gens.values())
    rate = f"{n:,} tokens in {dt:.2f} s: {n / max(dt, 1e-9):,.1f} tokens/s"
    if args.json:
        print(json.dumps({
            "seed": seed, "tokens": n, "seconds": dt, "tokens_per_s": n / max(dt, 1e-9),
            "samples": [{"prompt": t, "text": o, "ids": gens[i].ids, "finish_reason": gens[i].finish_reason}
                        for i, (t, o) in enumerate(zip(texts, outs))],
        }, indent=2))
    elif printer is None:
        for i, o in enumerate(outs):
            if len(outs) > 1:
                print(f"--- sample {i + 1} ---")
            print(o)
    print(f"[{rate} (batch {min(len(texts), args.batch_size)}, {torch.get_num_threads()} threads, seed {seed})]",
          file=sys.stderr)
    return 0


class _StreamPrinter:
    """Streams the sequences of a batch in order: the first unfinished one as it is made, each
    later one (what it has so far, then live) as soon as all before it are out."""

    def __init__(self, prompts: list[str]):
        self.prompts = prompts
        self.pending: list[list[str]] = [[] for _ in prompts]  # text made but not yet printed
        self.done = [False] * len(prompts)
        self.current = 0
        self._open(0)

    def _open(self, i: int) -> None:
        if len(self.prompts) > 1:
            print(f"--- sample {i + 1} ---")
        print(self.prompts[i] + "".join(self.pending[i]), end="", flush=True)
        self.pending[i] = []

    def text(self, i: int, text: str) -> None:
        if i == self.current:
            print(text, end="", flush=True)
        else:
            self.pending[i].append(text)

    def finish(self, i: int) -> None:
        self.done[i] = True
        while self.current < len(self.prompts) and self.done[self.current]:
            print(flush=True)
            self.current += 1
            if self.current < len(self.prompts):
                self._open(self.current)


def _export(args) -> int:
    from tinygpt.export import export

    path = export(args.run, args.out, args.format, which=args.which, overwrite=args.force)
    if args.format == "hf":
        print(f"wrote {path}: load it with transformers.AutoModelForCausalLM.from_pretrained({str(path)!r}) "
              "and AutoTokenizer.from_pretrained(...)")
    else:
        print(f"wrote {path / 'model.bin'} and {path / 'tokenizer.bin'}: run them with llama2.c's "
              f"./run {path / 'model.bin'} -z {path / 'tokenizer.bin'}")
    return 0


def _demo(args) -> int:
    from tinygpt.demo import run_demo

    run_demo(args.out, minutes=args.minutes, stories=args.stories, model=args.model, vocab_size=args.vocab_size,
             samples=args.samples, seed=args.seed, dtype=args.dtype, progress=not args.quiet)
    return 0


def _add_train_parser(sub) -> None:
    from tinygpt.model import PRESETS
    from tinygpt.training import TrainConfig

    d = TrainConfig()
    tr = sub.add_parser(
        "train", help="train a model on prepared shards", argument_default=argparse.SUPPRESS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Trains a GPT on the shards `tinygpt prepare` wrote. AdamW, linear warmup then cosine decay, "
        "periodic evaluation (loss, perplexity, bits per byte), checkpoints in RUN/latest (resumable) and "
        "RUN/best (lowest validation loss), RUN/metrics.jsonl and RUN/loss.png.\n\n"
        "Stops after --steps, --tokens or --time-budget, whichever comes first (default: one pass over the "
        "training tokens). Ctrl-C (or SIGTERM) stops after the current step and saves; --resume continues "
        "exactly. Data-parallel: torchrun --nproc_per_node=N -m tinygpt train ...",
    )
    tr.add_argument("--config", metavar="FILE", help="a .json or .toml file of settings (keys as these flags); flags win")
    tr.add_argument("--data", metavar="DIR", help="prepared shard directory (from `tinygpt prepare`)")
    tr.add_argument("--out", metavar="RUN", help="run directory for checkpoints, metrics and the plot")
    tr.add_argument("--resume", action="store_true", help="continue the run in RUN from its last checkpoint")
    tr.add_argument("--model", choices=list(PRESETS), metavar="PRESET",
                    help=f"model preset: {', '.join(PRESETS)} (default {d.model})")
    tr.add_argument("--model-set", action="append", type=_key_value, metavar="KEY=VALUE",
                    help="change one field of the preset's GPTConfig, e.g. --model-set n_layers=4 (repeatable)")
    g = tr.add_argument_group("how long")
    g.add_argument("--steps", type=_count, help="optimizer steps")
    g.add_argument("--tokens", type=_count, help="training tokens (e.g. 20M)")
    g.add_argument("--time-budget", metavar="DURATION", help="wall-clock budget, e.g. 90s, 10m, 1.5h; the "
                   "learning rate decays over it")
    g = tr.add_argument_group("batch and optimizer")
    g.add_argument("--batch-size", type=int, help=f"sequences per micro-batch (default {d.batch_size})")
    g.add_argument("--seq-len", type=int, help="tokens per sequence (default: min(256, the model's max_seq_len))")
    g.add_argument("--grad-accum", type=int, help="micro-batches per step, counted over all processes "
                   "(default: one per process)")
    g.add_argument("--lr", type=float, help=f"peak learning rate (default {d.lr:g})")
    g.add_argument("--min-lr", type=float, help="final learning rate of the cosine decay (default lr / 10)")
    g.add_argument("--warmup", type=int, help=f"linear warmup steps (default {d.warmup})")
    g.add_argument("--weight-decay", type=float, help=f"AdamW weight decay of the matrices (default {d.weight_decay:g})")
    g.add_argument("--dropout", type=float, help="dropout on the embeddings and residual branches while training; "
                   "helps small corpora (default 0)")
    g.add_argument("--grad-clip", type=float, help=f"clip the gradient norm to this; 0: off (default {d.grad_clip:g})")
    g.add_argument("--beta1", type=float, help=f"AdamW beta1 (default {d.beta1:g})")
    g.add_argument("--beta2", type=float, help=f"AdamW beta2 (default {d.beta2:g})")
    g.add_argument("--seed", type=int, help=f"seed of the initial weights and the data order (default {d.seed})")
    g = tr.add_argument_group("hardware")
    g.add_argument("--dtype", choices=["auto", "fp32", "bf16"],
                   help="bf16 autocast with fp32 master weights, or fp32; auto: bf16 where the hardware has it "
                   "(CUDA, or a CPU with AVX512-BF16)")
    g.add_argument("--device", help="auto (default: cuda if present), cpu, cuda or cuda:N; on CUDA, tinygpt's "
                   "kernels run only with TINYGPT_CUDA_KERNELS=1 (else torch's ops)")
    g.add_argument("--threads", type=int, help="CPU threads (default: torch's choice, which honours OMP_NUM_THREADS)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--reference", action="store_true", help="use the plain PyTorch ops instead of the fused kernels")
    g = tr.add_argument_group("evaluation, checkpoints, logs")
    g.add_argument("--eval-every", type=int, help=f"evaluate every N steps, and at the end (default {d.eval_every})")
    g.add_argument("--eval-tokens", type=_count, help=f"validation tokens per evaluation, at most (default {d.eval_tokens})")
    g.add_argument("--save-every", type=int, help="checkpoint every N steps, and at the end (default: --eval-every)")
    g.add_argument("--log-every", type=int, help=f"write a metrics record every N steps (default {d.log_every})")
    g.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    tr.set_defaults(func=_train)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tinygpt",
        description="Train tiny GPT language models on children's stories, and make them tell stories.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    tk = sub.add_parser("tokenizer", help="train, use and export byte-level BPE tokenizers")
    tks = tk.add_subparsers(dest="action", metavar="ACTION")
    tks.required = True

    t = tks.add_parser("train", help="learn a BPE vocabulary from UTF-8 text files")
    t.add_argument("inputs", nargs="+", help="UTF-8 text files (streamed; <|endoftext|> lines are cut out)")
    t.add_argument("--vocab-size", type=int, default=4096, help="tokens in all, specials included (default 4096)")
    t.add_argument("--pattern", default="gpt4", help="pre-tokenizer: gpt2, gpt4 (default) or a regex")
    t.add_argument("--threads", type=int, default=None, help="threads for counting (default: all cores)")
    t.add_argument("--out", required=True, help="where to write the tokenizer (JSON)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_tokenizer_train)

    e = tks.add_parser("encode", help="print the token ids of a text")
    e.add_argument("--tokenizer", required=True, help="tokenizer file")
    e.add_argument("text", nargs="?", help="text to encode ('-' or nothing: stdin)")
    e.set_defaults(func=_tokenizer_encode)

    d = tks.add_parser("decode", help="print the text of token ids")
    d.add_argument("--tokenizer", required=True, help="tokenizer file")
    d.add_argument("ids", nargs="*", help="token ids (nothing: read from stdin)")
    d.set_defaults(func=_tokenizer_decode)

    x = tks.add_parser("export", help="write a tokenizer for Hugging Face or tiktoken")
    x.add_argument("--tokenizer", required=True, help="tokenizer file")
    x.add_argument("--format", choices=["hf", "tiktoken"], required=True,
                   help="hf: tokenizer.json; tiktoken: a .tiktoken rank file")
    x.add_argument("--out", required=True, help="output file (or directory, for hf)")
    x.set_defaults(func=_tokenizer_export)

    st = sub.add_parser("stories", help="write built-in procedurally generated children's stories",
                        description="Writes short children's stories made from random plans (a verb, a "
                        "noun and an adjective from a built-in child vocabulary, plus random story "
                        "features), deterministic from --seed.")
    st.add_argument("--count", type=int, default=1000, help="how many stories (default 1000)")
    st.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    st.add_argument("--out", required=True,
                    help="output file: .txt (TinyStories layout, stories separated by <|endoftext|> lines), "
                    ".jsonl (story + plan per line), or - for stdout")
    st.add_argument("--format", choices=["txt", "jsonl"], help="override the format the file name implies")
    st.add_argument("--prompts", action="store_true",
                    help="write the natural-language story requests (for any LLM) instead of stories")
    st.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    st.set_defaults(func=_stories)

    pr = sub.add_parser("prepare", help="tokenize story files into train/val shards for training",
                        description="Reads and cleans stories (.txt with <|endoftext|> separators, "
                        "TinyStories .json shards, .jsonl, folders, .gz of any), trains a tokenizer "
                        "(or uses --tokenizer), and writes DIR/train.bin, DIR/val.bin, "
                        "DIR/tokenizer.json and DIR/meta.json.")
    pr.add_argument("inputs", nargs="+", metavar="INPUT", help="story files or folders")
    pr.add_argument("--out", required=True, metavar="DIR", help="output directory")
    g = pr.add_mutually_exclusive_group()
    g.add_argument("--vocab-size", type=int, default=4096, help="train a tokenizer of this size (default 4096)")
    g.add_argument("--tokenizer", metavar="FILE", help="use this tokenizer instead of training one")
    v = pr.add_mutually_exclusive_group()
    v.add_argument("--val", nargs="+", metavar="INPUT", help="validation story files (default: a fraction of INPUT)")
    v.add_argument("--val-fraction", type=float, default=None,
                   help="share of the stories held out for validation, by a hash of each story (default 0.02)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the validation split (default 0)")
    pr.add_argument("--pattern", default="gpt4", help="pre-tokenizer of a trained tokenizer: gpt4 (default), gpt2, or a regex")
    pr.add_argument("--dtype", default="auto", choices=["auto", "uint16", "uint32"],
                    help="token dtype (default: uint16 when the vocabulary fits)")
    pr.add_argument("--threads", type=int, default=None, help="tokenizer threads (default: all cores)")
    pr.add_argument("--errors", default="strict", choices=["strict", "replace"],
                    help="invalid UTF-8: stop with the file and byte offset (strict, default) or replace it with U+FFFD")
    pr.add_argument("--overwrite", action="store_true", help="replace shards already in DIR")
    pr.add_argument("--quiet", action="store_true", help="no progress bars")
    pr.set_defaults(func=_prepare)

    _add_train_parser(sub)

    ev = sub.add_parser("eval", help="evaluate a trained run: loss, perplexity, bits per byte",
                        description="Evaluates a run's checkpoint on the validation split of prepared shards (by "
                        "default the run's own) or on the stories of a text file.")
    ev.add_argument("--run", required=True, help="run directory (or a checkpoint directory)")
    src = ev.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="DIR", help="prepared shards whose val.bin to use (default: the run's data)")
    src.add_argument("--text", metavar="FILE", help="story file(s) to evaluate on (.txt, .json, .jsonl, .gz)")
    ev.add_argument("--which", choices=["best", "latest"], default="best",
                    help="best (lowest validation loss, default) or latest checkpoint")
    ev.add_argument("--batch-size", type=int, default=32, help="sequences per batch (default 32)")
    ev.add_argument("--seq-len", type=int, default=None, help="tokens per window (default: the run's training length)")
    ev.add_argument("--max-tokens", type=_count, default=None, help="evaluate at most this many tokens (default: all)")
    ev.add_argument("--device", default="auto", help="auto (default: cuda if present), cpu, cuda or cuda:N")
    ev.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="fp32 (default) or bf16 autocast")
    ev.add_argument("--reference", action="store_true", help="plain PyTorch ops instead of the fused kernels")
    ev.add_argument("--json", action="store_true", help="print the figures as JSON")
    ev.set_defaults(func=_eval)

    gn = sub.add_parser(
        "generate", help="write stories with a trained model",
        description="Continues a prompt (default: a new story) with a trained run's model: KV-cache decoding "
        "and the fused sampler. Several prompts (--prompt - reads them from standard input, one per line) and "
        "--num-samples are decoded together in batches. A story ends at <|endoftext|>, after --max-new-tokens, "
        "or when it fills the model's context. The tokens/s figure goes to standard error.")
    gn.add_argument("--run", required=True, help="run directory (or a checkpoint directory)")
    gn.add_argument("--which", choices=["best", "latest"], default="best", help="checkpoint (default best)")
    gn.add_argument("--prompt", default="", help="text to continue ('-': one prompt per line from standard input; "
                    "default: empty, a new story)")
    gn.add_argument("--num-samples", type=int, default=1, help="continuations of each prompt (default 1)")
    gn.add_argument("--max-new-tokens", type=int, default=256, help="at most this many new tokens each (default 256)")
    g = gn.add_argument_group("sampling")
    g.add_argument("--temperature", type=float, default=0.8, help="softmax temperature; 0 is greedy (default 0.8)")
    g.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens; 0: off (default)")
    g.add_argument("--top-p", type=float, default=0.95,
                   help="keep the most likely tokens that make up this probability (nucleus); 1: off (default 0.95)")
    g.add_argument("--min-p", type=float, default=0.0,
                   help="keep tokens at least this fraction as likely as the most likely one; 0: off (default)")
    g.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="> 1 makes tokens already in the text less likely (logits divided, or multiplied if "
                   "negative); 1: off (default)")
    g.add_argument("--frequency-penalty", type=float, default=0.0,
                   help="subtracted from a token's logit for each time it occurred (default 0)")
    g.add_argument("--presence-penalty", type=float, default=0.0,
                   help="subtracted from a token's logit if it occurred at all (default 0)")
    g.add_argument("--seed", type=int, default=None, help="seed; sample i uses seed + i (default: random, printed)")
    g = gn.add_argument_group("output and hardware")
    g.add_argument("--stream", action="store_true", help="print the text as it is made")
    g.add_argument("--json", action="store_true", help="print the samples, ids and figures as JSON")
    g.add_argument("--batch-size", type=int, default=64, help="sequences decoded together (default 64)")
    g.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                   help="decode precision; auto: bf16 where the hardware has it natively, else fp32")
    g.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    g.add_argument("--reference", action="store_true", help="plain PyTorch ops instead of the fused kernels")
    gn.set_defaults(func=_generate)

    ex = sub.add_parser(
        "export", help="export a trained model for Hugging Face transformers or llama2.c",
        description="hf: a directory that transformers' AutoModelForCausalLM loads as a LlamaForCausalLM "
        "(config.json, model.safetensors) with a tokenizer AutoTokenizer loads (end-of-text as eos). "
        "llama2c: model.bin (llama2.c's version-0 layout) and tokenizer.bin for llama2.c's run.c; the "
        "weights are exact, prompt encoding and start/stop tokens are run.c's own.")
    ex.add_argument("--run", required=True, help="run directory (or a checkpoint directory)")
    ex.add_argument("--format", choices=["hf", "llama2c"], required=True, help="hf or llama2c")
    ex.add_argument("--out", required=True, metavar="DIR", help="output directory (created; must be empty)")
    ex.add_argument("--which", choices=["best", "latest"], default="best", help="checkpoint (default best)")
    ex.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    ex.set_defaults(func=_export)

    dm = sub.add_parser("demo", help="the whole loop on built-in stories, offline: data, tokenizer, training, stories",
                        description="Writes built-in children's stories, trains a tokenizer, prepares shards, trains "
                        "a small model under a time budget, evaluates it, and prints stories it writes. "
                        "About 5 minutes on a 2-core CPU with the defaults.")
    dm.add_argument("--out", default="demo", help="working directory (default ./demo)")
    dm.add_argument("--minutes", type=float, default=4.0, help="training time budget in minutes (default 4)")
    dm.add_argument("--stories", type=int, default=20000, help="stories in the corpus (default 20000)")
    dm.add_argument("--model", default="1m", help="model preset (default 1m)")
    dm.add_argument("--vocab-size", type=int, default=2048, help="tokenizer size (default 2048)")
    dm.add_argument("--samples", type=int, default=3, help="stories to generate at the end (default 3)")
    dm.add_argument("--seed", type=int, default=0, help="seed of the corpus, the weights and the sampling (default 0)")
    dm.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto", help="as for train (default auto)")
    dm.add_argument("--quiet", action="store_true", help="no progress bars")
    dm.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, TypeError, RuntimeError) as e:
        print(f"tinygpt: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinygpt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
