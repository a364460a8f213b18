"""Multi-GPU data parallelism through torchrun (`torchrun --nproc_per_node=8 experiments/train.py ...`):
one process per GPU, WORLD_SIZE/RANK/LOCAL_RANK from the launcher. Only rank 0 evaluates and writes."""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        # rank 0 evaluates alone (beam search over a whole test set can take long) while the others
        # wait at a barrier: allow for it.
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                             timeout=datetime.timedelta(hours=6))
    return Dist(rank=int(os.environ.get("RANK", "0")), world=world, device=device)


def wrap(model, dist: Dist):
    """DDP all-reduces gradients on every backward (also inside gradient accumulation: simple, correct)."""
    if dist.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)


def unwrap(model):
    return getattr(model, "module", model)


def teardown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def barrier(dist: Dist) -> None:
    if dist.world > 1:
        torch.distributed.barrier()
