"""mIoU from one confusion matrix accumulated over the whole validation set."""
from __future__ import annotations

import torch


class ConfusionMatrix:
    """K×K counts, rows = ground truth, columns = prediction; ignored pixels never counted."""

    def __init__(self, num_classes: int, ignore_index: int = 255, device: torch.device | str = "cpu") -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.counts = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch. pred, target: (N, H, W) class indices (target may hold ``ignore_index``)."""
        keep = target != self.ignore_index
        if (target[keep] >= self.num_classes).any() or (target[keep] < 0).any():
            raise ValueError(f"target holds labels outside [0, {self.num_classes}) and {self.ignore_index}")
        index = target[keep] * self.num_classes + pred[keep]
        self.counts += torch.bincount(index, minlength=self.num_classes ** 2).reshape(self.num_classes, -1)

    def iou(self) -> torch.Tensor:
        """(K,) IoU per class = TP / (TP + FP + FN); NaN for a class absent from both GT and prediction."""
        counts = self.counts.double()
        tp = counts.diag()
        union = counts.sum(0) + counts.sum(1) - tp
        return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))

    def miou(self) -> float:
        """Mean IoU over classes that occur (NaN-skipping mean)."""
        iou = self.iou()
        return float(iou[~iou.isnan()].mean()) if (~iou.isnan()).any() else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.counts.sum()
        return float(self.counts.diag().sum() / total) if total > 0 else float("nan")
