"""The training loop: optimisers, schedule, clipping, DDP, logging, checkpointing and resume.

Model-specific work lives in :mod:`vqaudio.training.tasks`; this module never looks inside a model.

Run directory layout::

    <out>/config.json      the resolved TrainConfig
    <out>/checkpoint.pt    latest state (atomic); --resume continues from it
    <out>/metrics.jsonl    one JSON object per logged step / validation
    <out>/model/           exported model (config.json + model.safetensors) after the last step
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from vqaudio.config import to_dict
from vqaudio.data.dataset import StepSampler
from vqaudio.data.manifest import collect_entries
from vqaudio.errors import VQAudioError
from vqaudio.models.base import CodecModel
from vqaudio.models.io import load_model
from vqaudio.models.spectral import load_state_except_postfilter
from vqaudio.training.checkpoint import CHECKPOINT, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from vqaudio.training.config import TrainConfig
from vqaudio.training.tasks import Task, build_task


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on GPU); a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size())


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``min_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class Trainer:
    def __init__(
        self, config: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True
    ) -> None:
        self.config = config
        self.out = Path(out_dir)
        self.dist = init_distributed()
        self.progress = progress
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.task: Task = build_task(config)
        self.model = self.task.model
        self.frozen = [self._submodule(name) for name in config.freeze]
        for module in self.frozen:
            module.requires_grad_(False)
        # The task's random streams outside torch's global one (a quantizer's dropout draws, its own bitrate draws).
        for generator in self.task.generators().values():
            generator.manual_seed(config.seed)
        self.wrapped: nn.Module = self.model
        if self.dist.world_size > 1:
            self.wrapped = nn.parallel.DistributedDataParallel(self.model, find_unused_parameters=True)
        o = config.optim
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not trainable:
            raise VQAudioError("every parameter is frozen: nothing to train")
        self.optimizer = torch.optim.AdamW(trainable, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        # The task's discriminators (adversarial training), if any: it owns them and their optimiser.
        self.disc_wrapped: nn.Module | None = self.task.build_discriminators()
        if self.disc_wrapped is not None and self.dist.world_size > 1:
            self.disc_wrapped = nn.parallel.DistributedDataParallel(self.disc_wrapped)
        self.step = 0
        if config.init_from is not None:
            self._init_weights(config.init_from)
        if resume and (self.out / CHECKPOINT).exists():
            self._load(load_checkpoint(self.out / CHECKPOINT))
        elif not resume and (self.out / CHECKPOINT).exists():
            raise VQAudioError(
                f"{self.out} already holds a checkpoint; pass --resume to continue it or pick another --out"
            )

    def _submodule(self, name: str) -> nn.Module:
        module = getattr(self.model, name, None) if name.isidentifier() else None
        if not isinstance(module, nn.Module):
            raise VQAudioError(f"the {self.config.task} model has no submodule {name!r}")
        return module

    def _init_weights(self, directory: str) -> None:
        """Start from the weights of an exported model (fine-tuning); the optimiser starts fresh.

        With ``init_modules`` only those submodules are copied; the rest keep their fresh initialisation.
        """
        loaded = load_model(directory)
        source = loaded.codec if isinstance(self.model, CodecModel) else loaded.vocoder
        if source is None:
            raise VQAudioError(f"{directory}: has no {self.config.task} weights to start from")
        state = {k: v.float() if v.is_floating_point() else v for k, v in source.state_dict().items()}
        names = self.config.init_modules
        # A release's post-filter is fitted at export and used at inference only: a run neither starts from it
        # nor needs one of its own (export fits a new one), whichever side has it.
        try:
            if not names:
                load_state_except_postfilter(self.model, state)
            for name in names:
                prefix = name + "."
                load_state_except_postfilter(
                    self._submodule(name), {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
                )
        except RuntimeError:
            raise VQAudioError(f"{directory}: its {self.config.task} does not match this config's model") from None

    # -- state -----------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(),
            "config": json.dumps(to_dict(self.config)),
        }
        # Random streams outside torch's global one (the quantizer's, the task's) and the task's own state
        # (discriminators and their optimiser), so a resume continues exactly.
        for key, gen in self.task.generators().items():
            state[key] = gen.get_state()
        state.update(self.task.state_dict())
        return state

    def _load(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        for key, gen in self.task.generators().items():
            if key in state:
                gen.set_state(state[key])
        self.task.load_state_dict(state)

    def _set_lr(self) -> float:
        o = self.config.optim
        lr = o.lr * lr_factor(self.step, o.warmup_steps, self.config.steps, o.min_lr_ratio)
        for opt in (self.optimizer, *self.task.optimizers()):
            for g in opt.param_groups:
                g["lr"] = lr
        return lr

    # -- data ------------------------------------------------------------------------------------------
    def _loader(self) -> DataLoader[Any]:
        d = self.config.data
        entries = collect_entries(d.train, d.exclude_list, d.min_sample_rate)
        if not entries:
            raise VQAudioError("no training audio found in " + ", ".join(d.train))
        dataset, collate_fn = self.task.dataset(entries, rank=self.dist.rank, world_size=self.dist.world_size)
        remaining = (self.config.steps - self.step) * d.batch_size
        sampler = StepSampler(self.step * d.batch_size, max(0, remaining))
        return DataLoader(
            dataset,
            batch_size=d.batch_size,
            sampler=sampler,
            collate_fn=collate_fn,
            num_workers=d.num_workers,
            persistent_workers=False,
            # Starting an iterator draws a base seed for worker processes. From torch's global stream, that draw
            # would happen again on resume, after the checkpoint's stream is restored, and shift every later
            # global draw (dead-code restarts): a resumed run would drift from a straight one.
            generator=torch.Generator().manual_seed(self.config.seed + self.step),
        )

    # -- loop ------------------------------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _train_step(self, batch: Any) -> dict[str, float]:
        cfg = self.config
        self.wrapped.train()
        for module in self.frozen:
            module.eval()
        lr = self._set_lr()
        # The task's losses; when adversarial it also updates its discriminators on this batch.
        result = self.task.train_step(self.wrapped, batch, self.step, self.disc_wrapped)
        loss = result.loss
        metrics = dict(result.metrics)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        metrics.update(loss=float(loss.detach()), lr=lr, grad_norm=float(grad_norm))
        return metrics

    def _validate(self) -> dict[str, float]:
        from vqaudio.training.validate import validate

        return validate(self.task, self.config)

    def _sync_buffers(self) -> None:
        """Make every rank hold rank 0's buffers before saving. The quantizers already reduce their statistics
        across ranks, so this only guards against drift from float rounding or buffers of other modules."""
        if self.dist.world_size > 1:
            for buf in self.model.buffers():
                dist.broadcast(buf, src=0)

    def state_checksum(self) -> str:
        """sha256 over every parameter and buffer: equal on all ranks after a correct DDP run."""
        import hashlib

        h = hashlib.sha256()
        for key, value in sorted(self.model.state_dict().items()):
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def _check_ranks_agree(self) -> None:
        """Gather each rank's weight checksum; log them and refuse to export if the ranks diverged."""
        if self.dist.world_size <= 1:
            return
        sums: list[str | None] = [None] * self.dist.world_size
        dist.all_gather_object(sums, self.state_checksum())
        self._log({"step": self.step, "rank_checksums": sums})
        if len(set(sums)) != 1:
            raise VQAudioError(f"DDP ranks ended with different weights: {sums}")

    def export(self) -> Path:
        """Save the model as the task does (a model folder, or a prior's files) into ``<out>/model``."""
        return self.task.export(self.out / "model", steps=self.step)

    def fit(self) -> Path:
        """Train to ``config.steps`` (continuing from a checkpoint if resumed) and export the model."""
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            (self.out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
        loader = self._loader()
        bar = None
        if self.progress and self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=self.step, desc=cfg.name, dynamic_ncols=True)
        t0 = time.time()
        for batch in loader:
            metrics = self._train_step(batch)
            self.step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", ppl=f"{metrics.get('perplexity', 0):.0f}")
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                self._log({"step": self.step, "time": round(time.time() - t0, 2), **metrics})
            if self.step % cfg.valid_every == 0 and self.dist.is_main and cfg.data.valid:
                self._log({"step": self.step, "valid": self._validate()})
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                self._sync_buffers()
                if self.dist.is_main:
                    save_checkpoint(self.out / CHECKPOINT, self._state())
        if bar is not None:
            bar.close()
        self._sync_buffers()
        self._check_ranks_agree()
        path = self.out / "model"
        if self.dist.is_main:
            path = self.export()
        if self.dist.world_size > 1:
            dist.barrier()
        return path
