"""Training-loader throughput, to choose ``num_workers``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from torch.utils.data import DataLoader, Dataset, RandomSampler


class TransformedDataset(Dataset):
    """``dataset`` with ``transform(image, mask)`` applied to each raw item."""

    def __init__(self, dataset: Dataset, transform: Callable[..., Any]) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.transform(*self.dataset[index])


def loader_throughput(
    dataset: Dataset, transform: Callable[..., Any], batch_size: int, num_workers: int, num_batches: int
) -> float:
    """Images per second delivered by a shuffling training ``DataLoader``.

    The first batch is not timed, so worker start-up is excluded; samples are drawn
    with replacement so ``num_batches`` may exceed one epoch.

    Args:
        dataset: Returns raw ``(image, mask)`` items.
        transform: Training transform applied to each item.

    Returns:
        Images per second over ``num_batches`` batches.
    """
    if min(batch_size, num_batches) < 1 or num_workers < 0:
        raise ValueError(
            f"need batch_size, num_batches >= 1 and num_workers >= 0; got {batch_size}, {num_batches}, {num_workers}"
        )
    sampler = RandomSampler(dataset, replacement=True, num_samples=batch_size * (num_batches + 1))
    loader = DataLoader(TransformedDataset(dataset, transform), batch_size, sampler=sampler, num_workers=num_workers)
    batches = iter(loader)
    next(batches)
    start = time.perf_counter()
    images = sum(len(batch[0]) for batch in batches)
    return images / (time.perf_counter() - start)


def throughput_table(rows: Sequence[tuple[int, float]], crop: int, batch_size: int) -> str:
    """Format ``(num_workers, images/s)`` rows as a text table."""
    lines = [f"crop {crop}, batch {batch_size}", f"{'workers':>8} {'images/s':>10}"]
    return "\n".join(lines + [f"{workers:>8} {rate:>10.1f}" for workers, rate in rows])
