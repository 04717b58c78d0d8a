"""What one benchmark measures: its settings, the step cases, and the TrainConfig each case trains with."""
from __future__ import annotations

from dataclasses import dataclass

from cotrain.estimate import resolved_device

PAIR_CASES = {
    "vanilla_pair": {"method": "vanilla"},
    "hfd": {"method": "ours", "hfd": True, "bsd_region": False, "bsd_pixel": False},
    "bsd": {"method": "ours", "hfd": False, "bsd_region": True, "bsd_pixel": True},
    "hfd_bsd": {"method": "ours", "hfd": True, "bsd_region": True, "bsd_pixel": True},
}
COLUMNS = ("case", "step_s_median", "step_s_min", "step_s_iqr", "steps_timed", "peak_mem_mb", "peak_rss_mb",
           "step_ratio_vs_vanilla", "step_ratio_ci95_low", "step_ratio_ci95_high", "rounds", "mem_ratio_vs_vanilla",
           "images_per_s", "note")


@dataclass(frozen=True)
class Settings:
    """One benchmark: the pair, input size, batch, and how long to measure.

    ``repeats`` interleaved rounds of ``steps`` timed steps per case (``stats``): the ratios' 95 %
    intervals come from the rounds, so more rounds narrow them.
    """

    pair: str = "mobilenet_v2+mit_b1"
    size: int = 128
    batch: int = 4
    steps: int = 3
    warmup: int = 3
    repeats: int = 10
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    channels_last: bool = True
    num_classes: int = 21
    eval_images: int = 10
    loader_batches: int = 20

    @property
    def encoders(self) -> tuple[str, str]:
        cnn, _, vit = self.pair.partition("+")
        if not cnn or not vit:
            raise ValueError(f"--pair {self.pair!r} must read CNN+ViT, e.g. mobilenet_v2+mit_b1")
        return cnn, vit


SMOKE = {"pair": "mobilenet_v2+mit_b0", "size": 64, "batch": 2, "steps": 2, "warmup": 1, "repeats": 3,
         "eval_images": 2, "loader_batches": 2}


def resolved_dtype(dtype: str, device: str) -> str:
    """bf16 by default on CUDA (the training default, ``amp``), fp32 on CPU (autocast is CUDA-only there)."""
    if dtype == "auto":
        return "bf16" if device == "cuda" else "fp32"
    return dtype


def case_config(settings: Settings, case: str):
    """The TrainConfig a case trains with (cpu preset defaults, the case's method and switches)."""
    from cotrain.config import resolve
    cnn, vit = settings.encoders
    device = resolved_device(settings.device)
    options = PAIR_CASES.get(case, {"method": "vanilla"})
    return resolve("cpu", overrides=dict(cnn=cnn, vit=vit, crop_size=settings.size, batch_size=settings.batch,
                                         device=device, amp=resolved_dtype(settings.dtype, device) == "bf16",
                                         compile=settings.compile, channels_last=settings.channels_last,
                                         **options))
