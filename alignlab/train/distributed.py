"""Several processes under `accelerate launch` or `torchrun`: who this process is, its share of a step's examples,
sums over processes, and the model wrapped by accelerate (DDP), so the engine averages the gradients. With one
process every method is a no-op and the loops run exactly as before.

Batch semantics: a step's examples (optim.batch_size × optim.grad_accum, the global batch) are the same whatever
the number of processes; each process takes every world_size-th of them and splits its share into micro-batches of
batch_size / world_size (the per-device batch). The order stays a pure function of seed and epoch.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Processes:
    accelerator: Any = None
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        """The process that writes logs, checkpoints and the final model."""
        return self.rank == 0

    @property
    def device(self) -> torch.device | None:
        return None if self.accelerator is None else self.accelerator.device

    def share(self, indices: list[int]) -> list[int]:
        return indices[self.rank::self.world_size]

    def per_device(self, batch_size: int) -> int:
        if batch_size % self.world_size:
            from alignlab.config import ConfigError
            raise ConfigError(f"optim.batch_size={batch_size} is the global micro-batch: it must divide by the "
                              f"{self.world_size} processes (each takes batch_size / processes)")
        return batch_size // self.world_size

    def sum(self, value: float) -> float:
        """The sum of `value` over processes (float64 on the way)."""
        if self.world_size == 1:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return t.item()

    def sum_tensor(self, value: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of `value` over processes (a new tensor; `value` itself with one process)."""
        if self.world_size == 1:
            return value
        total = value.detach().clone()
        torch.distributed.all_reduce(total)
        return total

    def gather(self, value: torch.Tensor) -> torch.Tensor:
        """Every process's `value` (the same shape on each), concatenated along dim 0 in rank order."""
        if self.world_size == 1:
            return value
        parts = [torch.empty_like(value) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, value.detach().contiguous())
        return torch.cat(parts)

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """The engine's data-parallel wrapper (accelerate: DDP), whose backward averages gradients over processes."""
        return module if self.accelerator is None else self.accelerator.prepare_model(module)

    def no_sync(self, module: torch.nn.Module, last: bool):
        """Skip the gradient all-reduce on every micro-batch of a step but the last (accumulation)."""
        return module.no_sync() if self.world_size > 1 and not last else nullcontext()

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def launch_facts(self, batch_size: int, grad_accum: int) -> dict:
        return {"world_size": self.world_size, "per_device_batch": batch_size // self.world_size,
                "global_batch": batch_size * grad_accum}


def processes() -> Processes:
    """This process's place: one process unless launched with WORLD_SIZE > 1 (accelerate launch, torchrun)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes()
    from accelerate import Accelerator
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    return Processes(accelerator, accelerator.process_index, accelerator.num_processes)
