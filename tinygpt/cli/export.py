"""`tinygpt export`: a trained model for Hugging Face transformers or llama2.c."""

from __future__ import annotations

from tinygpt.cli.flags import add_format, add_out, add_run, add_which, flag_words

DESCRIPTION = (
    "hf: a directory that transformers' AutoModelForCausalLM loads as a LlamaForCausalLM "
    "(config.json, model.safetensors) with a tokenizer AutoTokenizer loads (end-of-text as eos). "
    "llama2c: model.bin (llama2.c's version-0 layout) and tokenizer.bin for llama2.c's run.c; the "
    "weights are exact, prompt encoding and start/stop tokens are run.c's own.")


def add_parser(sub) -> None:
    import inspect

    from tinygpt.export import FORMATS, export

    which = inspect.signature(export).parameters["which"].default
    ex = sub.add_parser("export", help="export a trained model for Hugging Face transformers or llama2.c",
                        description=DESCRIPTION)
    add_run(ex)
    add_format(ex, choices=list(FORMATS), help=" or ".join(FORMATS))
    add_out(ex, metavar="DIR", help="output directory (created; must be empty, or a previous export with "
            "--force); never the run itself, inside it, or around it")
    add_which(ex, default=which)
    ex.add_argument("--force", action="store_true", help="replace a previous export in DIR (never anything else)")
    ex.set_defaults(func=export_command)


def export_command(args) -> int:
    from tinygpt.export import export

    with flag_words({"overwrite=True": "--force"}):
        path = export(args.run, args.out, args.format, which=args.which, overwrite=args.force)
    if args.format == "hf":
        print(f"wrote {path}: load it with transformers.AutoModelForCausalLM.from_pretrained({str(path)!r}) "
              "and AutoTokenizer.from_pretrained(...)")
    else:
        print(f"wrote {path / 'model.bin'} and {path / 'tokenizer.bin'}: run them with llama2.c's "
              f"./run {path / 'model.bin'} -z {path / 'tokenizer.bin'}")
    return 0
