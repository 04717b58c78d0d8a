"""The step cases, each measured in a fresh child process: build the case, run the real step, time it.

A case is a pair (``PAIR_CASES``: built and prepared as ``build_run`` does) or one student alone
(``cnn_alone`` / ``vit_alone``: its own optimiser, CE only), trained by
``cotrain.engine.loop.training_step`` on synthetic in-memory tensors.
"""
from __future__ import annotations

import math
import statistics
import time

from cotrain.bench.memory import PeakMemory
from cotrain.bench.settings import PAIR_CASES, Settings, case_config
from cotrain.bench.stats import interleave
from cotrain.estimate import CASES


class SoloStudent:
    """Adapter so one student trains through ``training_step``: CE only, returns ``{side: L}``."""

    @staticmethod
    def build(side: str, cfg, num_classes: int):
        import torch
        from torch import nn

        from cotrain.engine.loop import compile_student
        from cotrain.engine.optim import poly_schedule
        from cotrain.losses import ce_loss
        from cotrain.models.students import build_student

        class Solo(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.student = build_student(side, getattr(cfg, side), num_classes, None)

            def forward(self, images, target):
                return {side: ce_loss(self.student(images).logits, target)}

        model = Solo()
        if cfg.compile:
            compile_student(model.student)
        if side == "cnn":
            optimizer = torch.optim.SGD(model.parameters(), lr=cfg.cnn_lr, momentum=cfg.cnn_momentum,
                                        weight_decay=cfg.cnn_weight_decay)
        else:
            optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.vit_lr, weight_decay=cfg.vit_weight_decay)
        power = cfg.cnn_poly_power if side == "cnn" else cfg.vit_poly_power
        return model, {side: optimizer}, {side: poly_schedule(optimizer, 10**9, power)}


def _build_case(settings: Settings, case: str):
    """A ``Run`` holding just what ``training_step`` needs for ``case``."""
    import torch

    from cotrain.engine.loop import Run, prepare_pair
    from cotrain.engine.optim import build_optimizers
    from cotrain.pair import build_pair

    cfg = case_config(settings, case)
    device = torch.device(cfg.device)
    if case in PAIR_CASES:
        pair = build_pair(cfg.cnn, cfg.vit, settings.num_classes, None, cfg.method, **cfg.pair_options())
        pair = prepare_pair(pair, cfg, device)
        optimizers, schedulers = build_optimizers(pair, cfg, 10**9)
        model = pair
    else:
        side = case.split("_")[0]
        model, optimizers, schedulers = SoloStudent.build(side, cfg, settings.num_classes)
        model = model.to(device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            if side == "cnn" and cfg.channels_last:
                model.to(memory_format=torch.channels_last)
        pair = model
    return Run(cfg=cfg, pair=pair, model=model, optimizers=optimizers, schedulers=schedulers, train_loader=None,
               val_loader=None, protocol=None, class_names=[], device=device)


def synthetic_batch(settings: Settings, device_type: str, seed: int = 0):
    """(N, 3, S, S) normal images and (N, S, S) labels with ~5 % ignored pixels, on the host."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(settings.batch, 3, settings.size, settings.size, generator=gen)
    target = torch.randint(0, settings.num_classes, (settings.batch, settings.size, settings.size), generator=gen)
    target[torch.rand(target.shape, generator=gen) < 0.05] = 255
    if device_type == "cuda":
        images, target = images.pin_memory(), target.pin_memory()
    return images, target


def measure_case(settings: Settings, case: str) -> dict:
    """Build ``case``, warm up, time ``settings.steps`` steps; return the times (warm-up ones apart) and memory.

    For memory, run it in a fresh process (its RSS high-water mark is the case's own); on CUDA the
    allocator's peak is the case's own in any process.
    """
    import torch

    torch.manual_seed(0)
    run = _build_case(settings, case)
    images, target = synthetic_batch(settings, run.device.type)
    run.model.train()
    memory = PeakMemory(run.device.type)
    memory.start()
    warmup = [timed_step(run, images, target) for _ in range(settings.warmup)]
    times = [timed_step(run, images, target) for _ in range(settings.steps)]
    check_finite_losses(run, images, target, case)
    peak, absolute = memory.peak()
    return {"times": times, "warmup_times": warmup, "peak_mem_mb": peak, "peak_rss_mb": absolute}


def timed_step(run, images, target) -> float:
    """Seconds of one real training step (the device synchronised at its end)."""
    import torch

    from cotrain.engine.loop import training_step
    start = time.perf_counter()
    training_step(run, images, target)
    if run.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def check_finite_losses(run, images, target, case: str) -> None:
    """One more step; fail naming ``case`` when its loss is not finite (the timings would mean nothing)."""
    from cotrain.engine.loop import training_step
    losses = training_step(run, images, target)
    total = sum(float(v.detach()) for k, v in losses.items() if k in run.optimizers)
    if not math.isfinite(total):
        raise RuntimeError(f"case {case}: non-finite loss {total}")


def measure_rounds(settings: Settings, cases: tuple[str, ...] = CASES) -> dict[str, list[list[float]]]:
    """Every case built once in this process, then ``settings.repeats`` interleaved rounds of
    ``settings.steps`` timed steps each (``stats.interleave``); per case, one list of step times per round."""
    import torch

    torch.manual_seed(0)
    runs = {case: _build_case(settings, case) for case in cases}
    device = next(iter(runs.values())).device.type
    images, target = synthetic_batch(settings, device)
    for case, run in runs.items():
        run.model.train()
        for _ in range(settings.warmup):
            timed_step(run, images, target)

    def log_round(index: int, times: dict[str, list[float]]) -> None:
        medians = "  ".join(f"{case} {statistics.median(t):.4f}" for case, t in times.items())
        print(f"  round {index + 1}/{settings.repeats}: {medians}", flush=True)

    out = interleave(cases, settings.repeats, settings.steps, lambda case: timed_step(runs[case], images, target),
                     log_round)
    for case, run in runs.items():
        check_finite_losses(run, images, target, case)
    return out


def measure_eval(settings: Settings) -> dict[str, float]:
    """Images/s of evaluation (both students, as ``evaluate`` runs them): whole image and sliding window.

    ``eval_whole``: S×S images; ``eval_sliding``: 2S×2S images in S×S windows every 2S/3 (9 windows).
    """
    import torch

    from cotrain.engine.inference import EvalProtocol
    from cotrain.engine.loop import autocast

    run = _build_case(settings, "vanilla_pair")
    run.pair.eval()
    s = settings.size
    protocols = {"eval_whole": (EvalProtocol("whole"), s),
                 "eval_sliding": (EvalProtocol("sliding", window=s, stride=max(2 * s // 3, 1)), 2 * s)}
    out = {}
    with torch.no_grad():
        for name, (protocol, side) in protocols.items():
            image = torch.randn(1, 3, side, side)
            rate = []
            for index in range(1 + settings.eval_images):
                start = time.perf_counter()
                with autocast(run):
                    logits = protocol.predict(lambda x: torch.cat(run.pair.predict(x), dim=1),
                                              image.to(run.device))
                logits.argmax(1).cpu()
                if index:  # the first image warms up
                    rate.append(time.perf_counter() - start)
            out[name] = len(rate) / sum(rate)
    return out
