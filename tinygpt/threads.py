"""CPU threading set-up, which must happen before torch starts its OpenMP pool.

With OpenMP's default wait policy, idle pool threads go to sleep and wake late, so on small
machines every small parallel op pays milliseconds (a 1M-element `mul_` takes 4-8 ms on 2 threads
instead of 0.05 ms). `OMP_WAIT_POLICY=ACTIVE` keeps them spinning. With that policy alone GNU
OpenMP (torch's) spins for ever, so a process that has gone idle, such as `tinygpt serve` between
requests, would keep a core busy; `GOMP_SPINCOUNT` bounds the spin (1M turns of the wait loop:
about 25-50 ms, far longer than any gap between the ops of a step or between decode steps, after
which the threads sleep). The `tinygpt` command sets both before torch loads unless the user has
set them; scripts that `import tinygpt` keep their own settings and get a warning from `train`
when they are in the trap.
"""

from __future__ import annotations

import os
import sys
import warnings

_CLI_WAIT_POLICY = "ACTIVE"
_CLI_SPIN_COUNT = "1M"


def running_as_cli() -> bool:
    """True when this process is the `tinygpt` command (console script or `python -m tinygpt`,
    as torchrun starts it)."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv else ""
    if argv0 in ("tinygpt", "tinygpt.exe"):
        return True
    orig = getattr(sys, "orig_argv", [])
    for i, a in enumerate(orig[:-1]):
        if a == "-m":
            return orig[i + 1] == "tinygpt"
    return False


def setup_cli_threads() -> None:
    """Called by the package before torch is imported: for the command line only, spinning
    OpenMP threads that sleep once idle for a while, unless OMP_WAIT_POLICY is already set (the
    user's choice wins, and then their GOMP_SPINCOUNT too)."""
    if "torch" in sys.modules or not running_as_cli() or "OMP_WAIT_POLICY" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = _CLI_WAIT_POLICY
    os.environ.setdefault("GOMP_SPINCOUNT", _CLI_SPIN_COUNT)


def configure(threads: int | None) -> int:
    """Sets torch's intra-op threads (None: leave torch's choice, which honours OMP_NUM_THREADS)
    and returns the number in use. Warns when the pool threads sleep between ops."""
    import torch

    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    n = torch.get_num_threads()
    if n > 1 and "OMP_WAIT_POLICY" not in os.environ:
        warnings.warn(
            "OMP_WAIT_POLICY is not set, so torch's CPU threads sleep between ops and small ops run "
            "several times slower. Set OMP_WAIT_POLICY=ACTIVE in the environment before Python starts "
            "(the `tinygpt` command does this for you).",
            RuntimeWarning,
            stacklevel=3,
        )
    return n
