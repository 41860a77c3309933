"""Data-parallel runs under torchrun: which process this is, the reductions the loop needs, and
the end-of-run check that every process holds the same weights. A plain run is one process of
one, and every call here is then a no-op."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from tinygpt.devices import resolve_device, wants_cuda


@dataclass
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(t)
        return t

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def all_true(self, ok: bool) -> bool:
        """Whether `ok` holds on every process (each must call this at the same point): what one
        process found, every process acts on, instead of waiting for it at the next reduction."""
        if self.world == 1:
            return ok
        on_gpu = torch.distributed.get_backend() == "nccl"  # NCCL reduces GPU tensors only
        device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
        failed = torch.tensor([0.0 if ok else 1.0], device=device)
        torch.distributed.all_reduce(failed)
        return failed.item() == 0


def init_distributed(device: str) -> Distributed:
    """This process's place in a torchrun launch (WORLD_SIZE, RANK, LOCAL_RANK), joining the
    process group (NCCL on CUDA, else gloo) unless it is joined already."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = wants_cuda(device)
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Distributed(rank, local, world)


def shutdown(dist: Distributed) -> None:
    """Leaves the process group `init_distributed` joined."""
    if dist.world > 1 and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def pick_device(name: str, dist: Distributed) -> torch.device:
    """The device named `name` for this process (a bare "cuda" is its local GPU)."""
    return resolve_device(name, local_rank=dist.local_rank if dist.world > 1 else None)


def check_in_sync(model: torch.nn.Module, dist: Distributed) -> bool | None:
    """In a multi-process run: whether every process holds exactly rank 0's weights (it must)."""
    if dist.world == 1:
        return None
    with torch.no_grad():
        mine = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        ref = mine.clone()
        torch.distributed.broadcast(ref, src=0)
        flags = dist.all_reduce(torch.tensor([0.0 if torch.equal(mine, ref) else 1.0], device=mine.device))
    if flags.item():
        raise RuntimeError("the processes' weights differ at the end of training: the run is broken")
    return True
