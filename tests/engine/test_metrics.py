"""mIoU from a confusion matrix, against counts worked out by hand."""
from __future__ import annotations

import math

import pytest
import torch

from cotrain.engine.metrics import ConfusionMatrix


def test_miou_by_hand_with_ignored_pixels():
    # ground truth / prediction over 8 pixels plus 2 ignored ones (whose predictions must not count)
    target = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2, 255, 255]])
    pred = torch.tensor([[0, 0, 1, 1, 2, 2, 2, 0, 1, 2]])
    matrix = ConfusionMatrix(3)
    matrix.update(pred, target)
    assert matrix.counts.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 2]]
    # class 0: TP 2, FP 1 (a 2 predicted 0), FN 1 -> 2/4
    # class 1: TP 1, FP 1 (a 0 predicted 1), FN 1 -> 1/3
    # class 2: TP 2, FP 1 (a 1 predicted 2), FN 1 -> 2/4
    expected = [2 / 4, 1 / 3, 2 / 4]
    assert matrix.iou().tolist() == pytest.approx(expected)
    assert matrix.miou() == pytest.approx(sum(expected) / 3)
    assert matrix.pixel_accuracy() == pytest.approx(5 / 8)


def test_class_absent_everywhere_is_nan_and_skipped():
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1]])
    matrix = ConfusionMatrix(4)
    matrix.update(pred, target)
    iou = matrix.iou()
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    # class 0: 1 / (1 + 0 + 1); class 1: 2 / (2 + 1 + 0)
    assert matrix.miou() == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_class_only_predicted_counts_as_zero():
    matrix = ConfusionMatrix(3)
    matrix.update(torch.tensor([[0, 2]]), torch.tensor([[0, 0]]))
    assert matrix.iou()[2] == 0.0 and math.isnan(matrix.iou()[1])
    assert matrix.miou() == pytest.approx((1 / 2 + 0) / 2)


def test_accumulating_batches_equals_one_big_batch():
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (6, 7, 9), generator=gen)
    target[target == 4] = 255
    pred = torch.randint(0, 5, (6, 7, 9), generator=gen)
    whole, parts = ConfusionMatrix(5), ConfusionMatrix(5)
    whole.update(pred, target)
    for p, t in zip(pred.split(2), target.split(2)):
        parts.update(p, t)
    assert torch.equal(whole.counts, parts.counts)
    assert parts.miou() == whole.miou()
    assert int(whole.counts.sum()) == int((target != 255).sum())


def test_mean_of_per_batch_mious_is_not_what_is_reported():
    """One matrix over the whole set, not an average of per-batch mIoUs (docs/method.md)."""
    batches = [(torch.tensor([[0, 0]]), torch.tensor([[0, 0]])), (torch.tensor([[0, 1]]), torch.tensor([[1, 1]]))]
    total = ConfusionMatrix(2)
    per_batch = []
    for pred, target in batches:
        total.update(pred, target)
        single = ConfusionMatrix(2)
        single.update(pred, target)
        per_batch.append(single.miou())
    # whole set: class 0 TP 2 FP 1 -> 2/3; class 1 TP 1 FN 1 -> 1/2
    assert total.miou() == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert sum(per_batch) / 2 != pytest.approx(total.miou())


def test_empty_matrix_and_bad_labels():
    matrix = ConfusionMatrix(3)
    assert math.isnan(matrix.miou())
    matrix.update(torch.tensor([[0]]), torch.tensor([[255]]))
    assert int(matrix.counts.sum()) == 0 and math.isnan(matrix.miou())
    with pytest.raises(ValueError, match="outside"):
        matrix.update(torch.tensor([[0]]), torch.tensor([[3]]))
