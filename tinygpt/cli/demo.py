"""`tinygpt demo`: the whole loop on the built-in stories, offline."""

from __future__ import annotations

import inspect
import os

from tinygpt.cli.flags import add_dtype, add_model, add_out, add_quiet, add_seed, add_vocab_size, flag_words

# What `run_demo`'s errors (and those of the steps it runs) name, and the flag.
DEMO_WORDS = {"minutes must be > 0, stories >= 10, samples >= 0 and grade_samples >= 0":
              "--minutes must be > 0, --stories >= 10, --samples >= 0 and --grade-samples >= 0",
              "vocab_size=": "--vocab-size "}


def add_parser(sub) -> None:
    from tinygpt.demo import run_demo

    d = {k: v.default for k, v in inspect.signature(run_demo).parameters.items()}
    dm = sub.add_parser("demo", help="the whole loop on built-in stories, offline: data, tokenizer, training, stories",
                        description="Writes built-in children's stories, trains a tokenizer, prepares shards, trains "
                        "a small model under a time budget, evaluates it, prints stories it writes and grades them "
                        "(OUT/grade/grade.html). "
                        "About 5 minutes on a 2-core CPU with the defaults.")
    add_out(dm, required=False, default=d["out"], help=f"working directory (default ./{d['out']})")
    dm.add_argument("--minutes", type=float, default=d["minutes"],
                    help=f"training time budget in minutes (default {d['minutes']:g})")
    dm.add_argument("--stories", type=int, default=d["stories"], help=f"stories in the corpus (default {d['stories']})")
    add_model(dm, default=d["model"], help=f"model preset (default {d['model']})")
    add_vocab_size(dm, default=d["vocab_size"], help=f"tokenizer size (default {d['vocab_size']})")
    dm.add_argument("--samples", type=int, default=d["samples"],
                    help=f"stories to generate at the end (default {d['samples']})")
    dm.add_argument("--grade-samples", type=int, default=d["grade_samples"],
                    help=f"completions of each built-in story beginning the run is graded on at the end (tinygpt "
                    f"grade; default {d['grade_samples']}, 0: no grading)")
    add_seed(dm, default=d["seed"], help=f"seed of the corpus, the weights and the sampling (default {d['seed']})")
    add_dtype(dm, default=d["dtype"], help=f"as for train (default {d['dtype']})")
    add_quiet(dm, help="no progress bars")
    dm.set_defaults(func=demo_command)


def demo_command(args) -> int:
    from tinygpt.demo import run_demo

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out} is not a directory; give a working directory")
    with flag_words(DEMO_WORDS):
        run_demo(args.out, minutes=args.minutes, stories=args.stories, model=args.model,
                 vocab_size=args.vocab_size, samples=args.samples, seed=args.seed, dtype=args.dtype,
                 grade_samples=args.grade_samples,
                 progress=not args.quiet)
    return 0
