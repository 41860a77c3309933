"""`tinygpt serve`: a run's model behind an OpenAI-compatible HTTP API, with a playground page."""

from __future__ import annotations

import os

from tinygpt.cli.flags import add_device, add_dtype, add_reference, add_run, add_threads, add_which

DESCRIPTION = (
    "Serves a trained run's model over HTTP: the OpenAI API's /v1/completions and /v1/chat/completions "
    "(streaming with server-sent events), /v1/models, /health and Prometheus /metrics, and a story "
    "playground page at /. Requests are batched continuously: each one is a row of one KV-cache decoder, "
    "joining and leaving between decode steps. Binds 127.0.0.1 (this machine only) unless --host says otherwise.")


def add_parser(sub) -> None:
    from tinygpt.serve.server import ServeOptions

    d = ServeOptions(run="")
    p = sub.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API", description=DESCRIPTION)
    add_run(p)
    add_which(p, default=d.which)
    net = p.add_argument_group("network and access")
    net.add_argument("--host", default=d.host, help=f"address to bind (default {d.host}; 0.0.0.0: every interface)")
    net.add_argument("--port", type=int, default=d.port, help=f"port (default {d.port}; 0: any free port)")
    net.add_argument("--api-key", action="append", default=[], metavar="KEY",
                     help="require 'Authorization: Bearer KEY' on every route but /health and the page "
                     "(repeatable; default: no key)")
    net.add_argument("--api-key-file", metavar="FILE", help="read the API keys from FILE, one per line")
    net.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                     help="let pages from ORIGIN (e.g. http://localhost:3000) call the API (repeatable; default: none)")
    net.add_argument("--max-request-bytes", type=int, default=d.max_body_bytes,
                     help=f"refuse request bodies larger than this with 413 (default {d.max_body_bytes})")
    srv = p.add_argument_group("model and batching")
    srv.add_argument("--model-name", help="the model's name in the API (default: the run directory's name)")
    srv.add_argument("--max-batch", type=int, default=d.max_batch,
                     help=f"sequences decoded together, one batch row each (default {d.max_batch})")
    srv.add_argument("--max-queue", type=int, default=d.max_queue,
                     help=f"sequences that may wait for a row; more get 429 with Retry-After (default {d.max_queue})")
    add_device(srv, default=d.device)
    add_dtype(srv, default=d.dtype, help="decode precision; auto: bf16 where the hardware has it natively, else fp32")
    add_threads(srv, help="CPU threads (default: torch's choice)")
    add_reference(srv)
    p.add_argument("--log-level", default=d.log_level, choices=["critical", "error", "warning", "info", "debug"],
                   help=f"server log detail (default {d.log_level})")
    p.set_defaults(func=serve_command)


def _api_keys(args) -> list[str]:
    keys = list(args.api_key)
    if args.api_key_file:
        with open(args.api_key_file, encoding="utf-8") as f:
            file_keys = [line.strip() for line in f if line.strip()]
        if not file_keys:
            raise ValueError(f"--api-key-file {args.api_key_file} holds no key (one per line)")
        keys += file_keys
    if any(not k.strip() or any(c.isspace() for c in k) for k in keys):
        raise ValueError("an API key cannot be empty or hold whitespace")
    return keys


def _check(args) -> None:
    for flag, value, low in (("--port", args.port, 0), ("--max-batch", args.max_batch, 1),
                             ("--max-queue", args.max_queue, 0), ("--max-request-bytes", args.max_request_bytes, 1)):
        if value < low:
            raise ValueError(f"{flag} must be >= {low}, got {value}")
    if args.port > 65535:
        raise ValueError(f"--port must be at most 65535, got {args.port}")


def model_name(run: str) -> str:
    return os.path.basename(os.path.normpath(os.path.abspath(run))) or "tinygpt"


def serve_command(args) -> int:
    from tinygpt.cli.flags import flag_words
    from tinygpt.serve.server import ServeOptions, serve
    from tinygpt.threads import configure
    from tinygpt.training.checkpoint import find

    _check(args)
    if args.threads is not None:
        with flag_words({"threads": "--threads"}):
            configure(args.threads)
    keys = _api_keys(args)
    find(args.run, args.which)  # a missing or unusable run is refused before the server starts
    o = ServeOptions(run=args.run, which=args.which, host=args.host, port=args.port, api_keys=keys,
                     cors_origins=args.cors_origin, max_batch=args.max_batch, max_queue=args.max_queue,
                     max_body_bytes=args.max_request_bytes, device=args.device, dtype=args.dtype,
                     reference=args.reference, log_level=args.log_level)
    return serve(o, args.model_name or model_name(args.run))
