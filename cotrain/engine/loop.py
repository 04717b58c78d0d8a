"""The co-training loop: build everything from a TrainConfig, train, evaluate, checkpoint, report.

Reads top to bottom in the order a run happens. It knows nothing of Ray: the caller
passes ``report(metrics, checkpoint_dir)`` and, to resume, a checkpoint folder.
"""
from __future__ import annotations

import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from cotrain.config import TrainConfig
from cotrain.engine.checkpoint import (
    CHECKPOINT_FILE,
    atomic_torch_save,
    load_state,
    remove_stale_scratch,
    scratch_folder,
)
from cotrain.engine.data import build_eval_data, build_train_data
from cotrain.engine.faults import inject as inject_faults
from cotrain.engine.metrics import ConfusionMatrix
from cotrain.engine.optim import build_optimizers
from cotrain.errors import CheckpointError, NonFiniteLossError
from cotrain.models.checkpoint import check_init_source, load_students_into
from cotrain.pair import SIDES, StudentPair, build_pair

Report = Callable[[dict, Optional[str]], None]


@dataclass
class Run:
    """Everything a run holds between epochs."""

    cfg: TrainConfig
    pair: StudentPair
    model: nn.Module  # the pair, or its DDP wrapper
    optimizers: dict
    schedulers: dict
    train_loader: DataLoader
    val_loader: DataLoader
    protocol: object
    class_names: list[str]
    device: torch.device
    start_epoch: int = 1
    saved_metrics: dict = field(default_factory=dict)  # scalar metrics stored with the restored checkpoint
    history: list = field(default_factory=list)  # scalar metrics of every finished epoch, oldest first


def resolve_device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_run(cfg: TrainConfig, resume_from: Optional[str] = None,
              wrap: Callable[[nn.Module], nn.Module] = lambda m: m, distributed: bool = False) -> Run:
    """Data, pair, optimisers; restored from ``resume_from`` (a checkpoint folder) when given."""
    device = resolve_device(cfg)
    seed_everything(cfg.seed)
    train_set, spec = build_train_data(cfg)
    val_set, protocol = build_eval_data(cfg, spec)
    num_classes = cfg.num_classes or spec.num_classes
    pair = build_pair(cfg.cnn, cfg.vit, num_classes, _weights(cfg.weights), cfg.method, **cfg.pair_options())
    pair = prepare_pair(pair, cfg, device)
    train_loader = build_train_loader(train_set, cfg, device)
    if distributed:  # each worker takes its shard through a DistributedSampler
        import ray.train.torch
        train_loader = ray.train.torch.prepare_data_loader(train_loader, move_to_device=False)
    steps = len(train_loader) if cfg.max_train_steps is None else min(cfg.max_train_steps, len(train_loader))
    optimizers, schedulers = build_optimizers(pair, cfg, steps * cfg.epochs)
    run = Run(cfg, pair, wrap(pair), optimizers, schedulers, train_loader,
              DataLoader(val_set, batch_size=1, num_workers=min(cfg.num_workers, 1)), protocol,
              list(spec.classes), device)
    if resume_from:
        restore(run, Path(resume_from))
    elif cfg.init_from:
        init_students(run, cfg.init_from)
    return run


def init_students(run: Run, path: str) -> None:
    """Start both students from another run's checkpoint (``init_from``): weights only, the optimisers and
    schedules start afresh, as fine-tuning from pre-trained students does."""
    state = load_state(Path(path))
    check_init_source(state, path, run.cfg.cnn, run.cfg.vit, run.pair.num_classes, run.cfg.aspp_rates)
    load_students_into(run.pair.cnn, run.pair.vit, state)


def prepare_pair(pair: StudentPair, cfg: TrainConfig, device: torch.device) -> StudentPair:
    """Move the pair to ``device`` and apply the speed switches of ``cfg`` (what training runs).

    On CUDA: cuDNN autotuning, and channels_last for the CNN (``cfg.channels_last``).
    Anywhere: ``cfg.compile`` compiles both students' encoder, decoder and head in place
    (``nn.Module.compile`` keeps the state-dict keys, so checkpoints stay loadable; the
    students call these three parts directly, so compiling ``model.forward`` would never run).
    """
    pair = pair.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: autotuned kernels pay off after a step
        if cfg.channels_last:
            pair.cnn.to(memory_format=torch.channels_last)
    if cfg.compile:
        for student in (pair.cnn, pair.vit):
            compile_student(student)
    return pair


def compile_student(student: nn.Module) -> None:
    """``torch.compile`` one student's ``model`` parts in place (the pair itself stays eager)."""
    for part in (student.model.encoder, student.model.decoder, student.model.segmentation_head):
        part.compile()


def _weights(value: Optional[str]) -> Optional[str]:
    return None if value in (None, "none") else value


def build_train_loader(dataset, cfg: TrainConfig, device: torch.device) -> DataLoader:
    # Workers are not persistent: a persistent worker seeds its augmentations once, at the first epoch it
    # serves, so a run resumed at epoch k would crop and flip differently from the uninterrupted run.
    # Fresh workers each epoch draw their seeds from the generator that seed_epoch re-seeds.
    return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                      num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                      persistent_workers=False, generator=torch.Generator())


def restore(run: Run, folder: Path) -> None:
    """Continue exactly where a checkpoint left off (students, Γs, optimisers, schedules, epoch)."""
    state = load_state(folder / CHECKPOINT_FILE if folder.is_dir() else folder)
    if state["num_classes"] != run.pair.num_classes:
        raise CheckpointError(f"checkpoint has num_classes={state['num_classes']}, "
                              f"the run has {run.pair.num_classes}")
    run.pair.load_state_dict(state["pair"])
    for side in SIDES:
        run.optimizers[side].load_state_dict(state["optimizers"][side])
        run.schedulers[side].load_state_dict(state["schedulers"][side])
    run.start_epoch = state["epoch"] + 1
    run.saved_metrics = dict(state.get("metrics", {}))
    run.history = list(state.get("history", [run.saved_metrics]))


def scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}


def save(run: Run, epoch: int, folder: Path, metrics: dict) -> None:
    state = {
        "pair": run.pair.state_dict(), "config": run.cfg.to_dict(), "num_classes": run.pair.num_classes,
        "epoch": epoch, "metrics": scalars(metrics), "history": run.history,
        "optimizers": {s: run.optimizers[s].state_dict() for s in SIDES},
        "schedulers": {s: run.schedulers[s].state_dict() for s in SIDES},
    }
    atomic_torch_save(state, folder / CHECKPOINT_FILE)


def autocast(run: Run):
    """bf16 autocast on CUDA when enabled; the losses cast logits to fp32 themselves."""
    if run.device.type == "cuda" and run.cfg.amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def seed_epoch(loader: DataLoader, seed: int, epoch: int) -> None:
    """Seed everything an epoch draws from (order, crops, flips; in the loader's workers too) from
    ``seed`` and ``epoch`` alone, so that a run resumed at an epoch boundary replays the same batches."""
    seed_everything(seed * 100_003 + epoch)
    if loader.generator is not None:
        loader.generator.manual_seed(seed * 100_003 + epoch)
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)


def train_one_epoch(run: Run, epoch: int, log: Callable[[str], None] = print) -> dict[str, float]:
    """One pass over the training set; returns the epoch's mean of every loss term and timings."""
    cfg, model = run.cfg, run.model
    model.train()
    seed_epoch(run.train_loader, cfg.seed, epoch)
    total = len(run.train_loader) if cfg.max_train_steps is None else min(cfg.max_train_steps, len(run.train_loader))
    sums: dict[str, torch.Tensor] = {}
    data_wait, start = 0.0, time.perf_counter()
    tick = start
    for step, (images, target) in enumerate(run.train_loader, start=1):
        data_wait += time.perf_counter() - tick
        run.pair.kd_weight = kd_ramp(cfg.kd_warmup_epochs, epoch, step, total)
        losses = training_step(run, images, target)
        for key, value in losses.items():
            sums[key] = sums.get(key, 0) + value.detach()
        if step % cfg.log_every == 0 or step == total:
            check_finite(sums, epoch, step)
            log(_progress_line(epoch, cfg.epochs, step, total, sums, time.perf_counter() - start))
        tick = time.perf_counter()
        if step >= total:
            break
    elapsed = time.perf_counter() - start
    means = {k: float(v) / total for k, v in sums.items() if k not in SIDES}
    means.update(loss_cnn=float(sums["cnn"]) / total, loss_vit=float(sums["vit"]) / total,
                 epoch_time_s=elapsed, step_time_s=elapsed / total, data_wait_frac=data_wait / elapsed,
                 kd_weight=run.pair.kd_weight)
    return means


def kd_ramp(warmup_epochs: float, epoch: int, step: int, steps_per_epoch: int) -> float:
    """The KD parts' weight at a step: 0 at the first step, rising linearly to 1 after ``warmup_epochs``
    (this project's warm-up, docs/method.md; 0 epochs: always 1, the paper's form)."""
    if warmup_epochs <= 0:
        return 1.0
    done = (epoch - 1) + (step - 1) / steps_per_epoch  # epochs finished before this step
    return min(1.0, done / warmup_epochs)


def training_step(run: Run, images: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Forward both students once, one backward on L^C + L^V, then each optimiser steps.

    With ``update_order=sequential`` (DML's order, docs/method.md "DML"): the CNN steps on
    L^C, both students run again, then the ViT steps on L^V computed against the updated CNN.
    """
    images = images.to(run.device, non_blocking=True)
    target = target.to(run.device, non_blocking=True)
    with autocast(run):
        losses = run.model(images, target)
    inject_faults(run, losses)  # COTRAIN_FAULT, set by reliability tests; a no-op when unset
    if run.cfg.update_order == "sequential":
        step_sides(run, ["cnn"], losses["cnn"])
        with autocast(run):
            again = run.model(images, target)
        step_sides(run, ["vit"], again["vit"])
        return {**losses, **{k: v for k, v in again.items() if k == "vit" or k.endswith("_vit")}}
    # One backward is exact: L^C reaches only θ^C and its Γs, L^V only θ^V and its Γs.
    # (Iterating the optimisers' sides lets a single student, as in ``cotrain.bench``, use this step.)
    step_sides(run, list(run.optimizers), sum(losses[side] for side in run.optimizers))
    return losses


def step_sides(run: Run, sides: list[str], loss: torch.Tensor) -> None:
    """Backward ``loss`` and step the optimisers and schedulers of ``sides``."""
    for side in sides:
        run.optimizers[side].zero_grad(set_to_none=True)
    loss.backward()
    for side in sides:
        run.optimizers[side].step()
        run.schedulers[side].step()


def check_finite(sums: dict[str, torch.Tensor], epoch: int, step: int) -> None:
    """Fail naming the first non-finite term (checked every ``log_every`` steps: one host sync)."""
    for key, value in sums.items():
        if not math.isfinite(float(value)):
            raise NonFiniteLossError(f"loss term {key!r} became non-finite by epoch {epoch} step {step}")


def _progress_line(epoch: int, epochs: int, step: int, total: int, sums: dict, elapsed: float) -> str:
    return (f"epoch {epoch}/{epochs} step {step}/{total}  L^C {float(sums['cnn']) / step:.4f}  "
            f"L^V {float(sums['vit']) / step:.4f}  {step / elapsed:.2f} it/s")


@torch.no_grad()
def evaluate(run: Run) -> dict:
    """Both students' mIoU and per-class IoU (percent) from whole-validation-set confusion matrices."""
    run.pair.eval()
    k = run.pair.num_classes
    matrices = {side: ConfusionMatrix(k, device=run.device) for side in SIDES}
    for index, (images, target) in enumerate(run.val_loader):
        if run.cfg.max_val_images is not None and index >= run.cfg.max_val_images:
            break
        images, target = images.to(run.device), target.to(run.device)
        with autocast(run):
            logits = run.protocol.predict(lambda x: torch.cat(run.pair.predict(x), dim=1), images)
        matrices["cnn"].update(logits[:, :k].argmax(1), target)
        matrices["vit"].update(logits[:, k:].argmax(1), target)
    out: dict = {"class_names": run.class_names, "eval_protocol": run.protocol.describe(),
                 "eval_split": run.cfg.eval_split}
    for side, matrix in matrices.items():
        out[f"miou_{side}"] = 100.0 * matrix.miou()
        out[f"iou_{side}"] = [None if math.isnan(v) else 100.0 * v for v in matrix.iou().tolist()]
    out["miou_sum"] = out["miou_cnn"] + out["miou_vit"]  # what searches and ASHA rank trials by
    return out


def fit(cfg: TrainConfig, report: Report, resume_from: Optional[str] = None,
        wrap: Callable[[nn.Module], nn.Module] = lambda m: m, is_main: bool = True,
        log: Callable[[str], None] = print, distributed: bool = False, scratch: Optional[Path] = None) -> dict:
    """Train for ``cfg.epochs``; after each epoch evaluate, checkpoint and ``report``. Returns the last metrics.

    ``scratch``: a folder of the run's own (``checkpoint.SCRATCH_DIR``) where each checkpoint is written before
    ``report`` copies it; what a killed save left there is removed now. None: ``$TMPDIR``.
    """
    if scratch is not None and is_main:
        remove_stale_scratch(scratch)
    run = build_run(cfg, resume_from, wrap, distributed)
    # After a resume Tune may have started the trial's result.json afresh: the first report carries
    # the earlier epochs (``history``) so the learning curves keep them.
    history = run.history[:-1] if run.start_epoch > cfg.epochs else list(run.history)
    earlier = {"history": history} if run.history else {}
    metrics: dict = {}
    if run.start_epoch > cfg.epochs:  # resumed from the last epoch's checkpoint (the driver died before
        metrics = {**run.saved_metrics, "epoch": cfg.epochs, **evaluate(run)}  # recording it): report again
        report({**metrics, **earlier}, None)
    for epoch in range(run.start_epoch, cfg.epochs + 1):
        metrics = {"epoch": epoch, "train_images": len(run.train_loader.dataset),
                   **train_one_epoch(run, epoch, log), **evaluate(run)}
        metrics["lr_cnn"] = run.schedulers["cnn"].get_last_lr()[0]
        metrics["lr_vit"] = run.schedulers["vit"].get_last_lr()[0]
        log(f"epoch {epoch}/{cfg.epochs}  mIoU CNN {metrics['miou_cnn']:.2f}  ViT {metrics['miou_vit']:.2f}  "
            f"({metrics['eval_split']}, {metrics['eval_protocol']})")
        run.history.append(scalars(metrics))
        with scratch_folder(scratch) if is_main else nullcontext(None) as folder:
            if is_main:
                save(run, epoch, Path(folder), metrics)
            report({**metrics, **(earlier if epoch == run.start_epoch else {})}, folder)
    if scratch is not None and is_main:
        remove_stale_scratch(scratch)  # empty by now: no trace of the scratch folder once the run is done
    return metrics
