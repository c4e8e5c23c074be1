"""Several processes under `accelerate launch` or `torchrun`: who this process is, its share of a step's examples,
sums over processes, and the model wrapped by the engine, which averages the gradients: DDP (through accelerate), or
FSDP2 (PyTorch's `fully_shard`: parameters, gradients and optimizer state sharded over the processes) when the
launch asks for it: `accelerate launch --config_file configs/accelerate/fsdp2.yaml`, or the same environment
accelerate sets (ACCELERATE_USE_FSDP=true FSDP_VERSION=2, FSDP_OFFLOAD_PARAMS=true for CPU offload) under torchrun.
With one process every method is a no-op and the loops run exactly as before.

Batch semantics: a step's examples (optim.batch_size × optim.grad_accum, the global batch) are the same whatever
the number of processes; each process takes every world_size-th of them and splits its share into micro-batches of
batch_size / world_size (the per-device batch). The order stays a pure function of seed and epoch.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class Processes:
    accelerator: Any = None
    rank: int = 0
    world_size: int = 1
    engine: str = "ddp"
    """ddp: every process holds the whole model; fsdp2: each holds 1/world_size of every parameter, gradient and
    optimizer state (gathered layer by layer for the forward and backward)."""
    cpu_offload: bool = False
    """fsdp2: keep the sharded parameters and optimizer state in CPU memory between uses."""
    reshard_after_forward: bool = True
    """fsdp2: free each block's gathered parameters after its forward (gather them again for the backward)."""

    @property
    def sharded(self) -> bool:
        """The model's parameters are shards (FSDP2): saving and loading it take every process."""
        return self.engine == "fsdp2" and self.world_size > 1

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

    def most(self, count: int) -> int:
        """The largest `count` over processes: how many forward/backward passes each runs in a step, so that FSDP2's
        per-pass parameter gathers meet (a process with fewer micro-batches pads with zero-weight passes)."""
        if self.world_size == 1:
            return count
        t = torch.tensor([count], dtype=torch.long, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return int(t.item())

    def means(self, values: dict[str, torch.Tensor]) -> dict[str, float]:
        """Each metric's mean over every process's values. The processes may hold different keys (a KTO share with
        no undesirable example has no rewards/rejected): every key any of them holds is reduced, in one order."""
        keys = [list(values)] * self.world_size
        torch.distributed.all_gather_object(keys, list(values))
        union = sorted({k for ks in keys for k in ks})
        mine = torch.tensor([[float(values[k].double().sum()) if k in values else 0.0 for k in union],
                             [float(values[k].numel()) if k in values else 0.0 for k in union]],
                            dtype=torch.float64, device=self.device)
        totals, counts = self.sum_tensor(mine).tolist()                      # one all-reduce for every key
        return {key: total / count for key, total, count in zip(union, totals, counts) if count}

    def sum_each(self, values: dict[str, float]) -> dict[str, float]:
        """Each value summed over processes, in one all-reduce (every process holds the same keys)."""
        if self.world_size == 1:
            return values
        summed = self.sum_tensor(torch.tensor(list(values.values()), dtype=torch.float64, device=self.device))
        return dict(zip(values, summed.tolist()))

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
        """The engine's data-parallel wrapper, whose backward averages gradients over processes: accelerate's DDP,
        or FSDP2 (each transformer block its own unit, then the rest). Wrap before making the optimizer: FSDP2
        replaces the parameters by their shards."""
        if self.accelerator is None:
            return module
        if not self.sharded:
            return self.accelerator.prepare_model(module)
        from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard
        offload = CPUOffloadPolicy() if self.cpu_offload else OffloadPolicy()
        for block in transformer_blocks(module):
            fully_shard(block, offload_policy=offload, reshard_after_forward=self.reshard_after_forward)
        return fully_shard(module, offload_policy=offload, reshard_after_forward=self.reshard_after_forward)

    def no_sync(self, module: torch.nn.Module, last: bool):
        """Skip the gradient all-reduce (FSDP2: reduce-scatter) on every micro-batch of a step but the last."""
        if self.world_size == 1:
            return nullcontext()
        if self.sharded:
            module.set_requires_gradient_sync(last)
            return nullcontext()
        return module.no_sync() if not last else nullcontext()

    def full_state_dict(self, model: torch.nn.Module) -> dict | None:
        """A sharded model's whole state dict (FSDP2: gathered from every process, which must all call this) on the
        main process, on the CPU; None on the others, and where the model is not sharded (it saves itself)."""
        if not self.sharded:
            return None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return state if self.main else None

    def save_shards(self, directory: Path, model: torch.nn.Module, optimizer) -> None:
        """FSDP2: every process writes its shards of the model and optimizer state to `directory`
        (torch.distributed.checkpoint; `alignlab checkpoint export` turns them into a Hugging Face model)."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict
        model_state, optimizer_state = get_state_dict(model, optimizer)
        dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(directory))

    def load_shards(self, directory: Path, model: torch.nn.Module, optimizer) -> None:
        """FSDP2: the shards written by `save_shards`, read back into this process's part of the model and optimizer
        (on any number of processes: the checkpoint records the whole tensors' layout)."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
        model_state, optimizer_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optimizer": optimizer_state}
        dcp.load(state, checkpoint_id=str(directory))
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def launch_facts(self, batch_size: int, grad_accum: int) -> dict:
        return {"world_size": self.world_size, "per_device_batch": batch_size // self.world_size,
                "global_batch": batch_size * grad_accum}


def check_shardable(model_cfg, procs: Processes) -> None:
    """What FSDP2 does not run yet here, refused before the first step rather than trained wrongly."""
    if procs.sharded and model_cfg.lora.enabled:
        from alignlab.config import ConfigError
        raise ConfigError("model.lora.enabled with FSDP2 is not supported yet (issue 17): LoRA's small adapters "
                          "train well under DDP (configs/accelerate/ddp.yaml)")


def refuse_sharding(procs: Processes, command: str) -> None:
    """Trainers that run under DDP only for now (their models are built around whole parameters)."""
    if procs.sharded:
        from alignlab.config import ConfigError
        raise ConfigError(f"alignlab {command} does not run under FSDP2 yet (issue 17; sft and dpo do): launch it "
                          "with configs/accelerate/ddp.yaml, or torchrun without ACCELERATE_USE_FSDP")


def transformer_blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a Hugging Face model (the classes its `_no_split_modules` names: LlamaDecoderLayer,
    Qwen2DecoderLayer, ...), each an FSDP2 unit; a model that names none is sharded as one unit."""
    names = set()
    for sub in module.modules():
        names |= set(getattr(sub, "_no_split_modules", None) or [])
    return [sub for sub in module.modules() if type(sub).__name__ in names]


def engine_from_environment() -> tuple[str, bool, bool]:
    """What the launcher asked for: accelerate's environment for an FSDP config (fsdp_version 2 only), else DDP.
    Returns the engine, CPU offload and reshard-after-forward."""
    from alignlab.config import ConfigError
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        raise ConfigError("DeepSpeed launches are not supported by alignlab's trainers yet (issue 17): use "
                          "configs/accelerate/fsdp2.yaml (full sharding, like ZeRO-3) or ddp.yaml")
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return "ddp", False, True
    if os.environ.get("FSDP_VERSION", "1") != "2":
        raise ConfigError("FSDP1 is not supported: set fsdp_version: 2 in the accelerate config "
                          "(configs/accelerate/fsdp2.yaml), or FSDP_VERSION=2 under torchrun")
    return ("fsdp2", os.environ.get("FSDP_OFFLOAD_PARAMS", "false").lower() == "true",
            os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower() != "false")


def processes() -> Processes:
    """This process's place: one process unless launched with WORLD_SIZE > 1 (accelerate launch, torchrun)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes()
    engine, offload, reshard = engine_from_environment()
    if offload and not torch.cuda.is_available():
        from alignlab.config import ConfigError
        raise ConfigError("fsdp_offload_params (FSDP_OFFLOAD_PARAMS=true) moves GPU shards to CPU memory; on a machine "
                          "without a GPU they are there already: set it false")
    from accelerate import Accelerator
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    return Processes(accelerator, accelerator.process_index, accelerator.num_processes, engine, offload, reshard)
