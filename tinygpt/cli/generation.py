"""`tinygpt generate`: stories from a trained run, printed at the end, streamed, or as JSON."""

from __future__ import annotations

import inspect
import json
import os
import sys
import time

from tinygpt.cli.flags import (add_batch_size, add_dtype, add_json, add_reference, add_run, add_seed, add_threads,
                               add_which, flag_words)

DESCRIPTION = (
    "Continues a prompt (default: a new story) with a trained run's model: KV-cache decoding "
    "and the fused sampler. Several prompts (--prompt - reads them from standard input, one per line) and "
    "--num-samples are decoded together in batches. A story ends at <|endoftext|>, after --max-new-tokens, "
    "or when it fills the model's context. The tokens/s figure goes to standard error.")


def _defaults(fn) -> dict:
    return {k: v.default for k, v in inspect.signature(fn).parameters.items()}


def _off(off: float, default: float) -> str:
    """'0: off (default)' when the default is off, else '1: off (default 0.95)'."""
    return f"{off:g}: off (default)" if default == off else f"{off:g}: off (default {default:g})"


def add_parser(sub) -> None:
    from tinygpt.generate import SamplingSettings, generate
    from tinygpt.training.checkpoint import load_run

    s, d = SamplingSettings(), _defaults(generate)
    gn = sub.add_parser("generate", help="write stories with a trained model", description=DESCRIPTION)
    add_run(gn)
    add_which(gn, default=_defaults(load_run)["which"])
    gn.add_argument("--prompt", default=d["prompts"], help="text to continue ('-': one prompt per line from "
                    "standard input; default: empty, a new story)")
    gn.add_argument("--num-samples", type=int, default=d["num_samples"],
                    help=f"continuations of each prompt (default {d['num_samples']})")
    gn.add_argument("--max-new-tokens", type=int, default=s.max_new_tokens,
                    help=f"at most this many new tokens each (default {s.max_new_tokens})")
    _add_instruct(gn.add_argument_group("instruction (a model trained with prepare --instruct)"))
    _add_sampling(gn.add_argument_group("sampling"), s, d)
    _add_output(gn.add_argument_group("output and hardware"), d)
    gn.set_defaults(func=generate_command)


def _add_instruct(g) -> None:
    g.add_argument("--words", metavar="W1,W2,...", help="words the story should use: the prompt becomes "
                   "'Words: W1, W2, ...' then 'Story:' (and --prompt's text after it)")
    g.add_argument("--features", metavar="F1,F2,...", help="story features, as a 'Features:' line: dialogue, "
                   "bad ending, moral value, plot twist, foreshadowing, conflict (or Dialogue, BadEnding, "
                   "MoralValue, Twist, Foreshadowing, Conflict; any case)")


def _add_sampling(g, s, d) -> None:
    g.add_argument("--temperature", type=float, default=s.temperature,
                   help=f"softmax temperature; 0 is greedy (default {s.temperature:g})")
    g.add_argument("--top-k", type=int, default=s.top_k, help=f"keep the k most likely tokens; {_off(0, s.top_k)}")
    g.add_argument("--top-p", type=float, default=s.top_p, help="keep the most likely tokens that make up this "
                   f"probability (nucleus); {_off(1, s.top_p)}")
    g.add_argument("--min-p", type=float, default=s.min_p, help="keep tokens at least this fraction as likely as "
                   f"the most likely one; {_off(0, s.min_p)}")
    g.add_argument("--repetition-penalty", type=float, default=s.repetition_penalty,
                   help="> 1 makes tokens already in the text less likely (logits divided, or multiplied if "
                   f"negative); {_off(1, s.repetition_penalty)}")
    g.add_argument("--frequency-penalty", type=float, default=s.frequency_penalty,
                   help=f"subtracted from a token's logit for each time it occurred (default {s.frequency_penalty:g})")
    g.add_argument("--presence-penalty", type=float, default=s.presence_penalty,
                   help=f"subtracted from a token's logit if it occurred at all (default {s.presence_penalty:g})")
    add_seed(g, default=d["seed"], help="seed; sample i uses seed + i (default: random, printed)")


def _add_output(g, d) -> None:
    g.add_argument("--stream", action="store_true", help="print the text as it is made")
    add_json(g, help="print the samples, ids and figures as JSON")
    add_batch_size(g, default=d["batch_size"], help=f"sequences decoded together (default {d['batch_size']})")
    add_dtype(g, default=d["dtype"], help="decode precision; auto: bf16 where the hardware has it natively, else fp32")
    add_threads(g, help="CPU threads (default: torch's choice)")
    add_reference(g)


def _prompts(args) -> list[str]:
    if args.num_samples < 1 or args.batch_size < 1:
        raise ValueError("--num-samples and --batch-size must be >= 1")
    if args.prompt != "-":
        return [args.prompt]
    prompts = [line.rstrip("\r\n") for line in sys.stdin]
    if not prompts:
        raise ValueError("--prompt -: no prompts on standard input (one per line)")
    return prompts


def _instruct_prompts(args, prompts: list[str]) -> list[str]:
    """With --words or --features, each prompt goes after the instruction's "Story:"."""
    if args.words is None and args.features is None:
        return prompts
    from tinygpt.llmstories import instruct

    words = _listed(args.words, "--words")
    with flag_words({"unknown story feature": "--features: unknown story feature"}):
        features = instruct.parse_features(_listed(args.features, "--features"))
    head = instruct.prompt(words, features)
    return [f"{head} {p}" if p else head for p in prompts]


def _listed(text: str | None, flag: str) -> list[str]:
    if text is None:
        return []
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise ValueError(f"{flag} names nothing: give a comma-separated list")
    return items


def _sampling(args) -> dict:
    from tinygpt.generate import SamplingSettings

    settings = dict(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        min_p=args.min_p, repetition_penalty=args.repetition_penalty, frequency_penalty=args.frequency_penalty,
        presence_penalty=args.presence_penalty)
    # Each setting is the flag of its name: top_p is --top-p.
    with flag_words({name: "--" + name.replace("_", "-") for name in settings}):
        SamplingSettings(**settings).validate()  # before the model loads
    return settings


def _check_prompts(prompts: list[str], tokenizer) -> None:
    """A prompt is text: the tokenizer would refuse a special token in it, in its own terms."""
    for name in tokenizer.special_tokens:
        if any(name in p for p in prompts):
            raise ValueError(f"--prompt holds the special token {name!r}, which a prompt cannot contain: "
                             "remove it (generate starts every story after an end-of-text token already)")


def generate_command(args) -> int:
    import torch

    from tinygpt.training.checkpoint import load_run
    from tinygpt.generate import generate
    from tinygpt.threads import configure

    if args.threads is not None:
        with flag_words({"threads": "--threads"}):
            configure(args.threads)
    prompts = _instruct_prompts(args, _prompts(args))
    settings = _sampling(args)
    model, tokenizer = load_run(args.run, args.which, fused=not args.reference)
    _check_prompts(prompts, tokenizer)
    texts = [p for p in prompts for _ in range(args.num_samples)]
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(6), "little")
    printer = StreamPrinter(texts) if args.stream and not args.json else None
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
    if args.json:
        _print_json(seed, n, dt, texts, outs, gens)
    elif printer is None:
        _print_samples(outs)
    print(f"[{n:,} tokens in {dt:.2f} s: {n / max(dt, 1e-9):,.1f} tokens/s (batch {min(len(texts), args.batch_size)}, "
          f"{torch.get_num_threads()} threads, seed {seed})]", file=sys.stderr)
    return 0


def _print_json(seed: int, n: int, dt: float, texts: list[str], outs: list[str], gens: dict) -> None:
    print(json.dumps({
        "seed": seed, "tokens": n, "seconds": dt, "tokens_per_s": n / max(dt, 1e-9),
        "samples": [{"prompt": t, "text": o, "ids": gens[i].ids, "finish_reason": gens[i].finish_reason}
                    for i, (t, o) in enumerate(zip(texts, outs))],
    }, indent=2))


def _print_samples(outs: list[str]) -> None:
    for i, o in enumerate(outs):
        if len(outs) > 1:
            print(f"--- sample {i + 1} ---")
        print(o)


class StreamPrinter:
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
