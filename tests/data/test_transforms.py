import pytest
import torch

from cotrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def item(height=40, width=48):
    """An image whose red channel encodes the label (10 * label), so geometry can be checked."""
    mask = torch.randint(0, 5, (height, width))
    mask[:, :3] = 255
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    image[0] = torch.where(mask == 255, 250, mask * 10).to(torch.uint8)
    return image, mask


def test_labels_never_blended_and_shapes():
    torch.manual_seed(0)
    transform = train_transform(32)
    image, mask = item()
    for _ in range(30):
        out_image, out_mask = transform(image, mask)
        assert out_image.shape == (3, 32, 32) and out_image.dtype == torch.float32
        assert out_mask.shape == (32, 32) and out_mask.dtype == torch.int64
        assert set(out_mask.unique().tolist()) <= set(mask.unique().tolist()) | {255}


def test_crop_and_flip_keep_image_and_mask_aligned():
    torch.manual_seed(1)
    transform = train_transform((24, 40), scale_range=(1.0, 1.0))
    image, mask = item()
    for _ in range(10):
        out_image, out_mask = transform(image, mask)
        red = ((out_image * STD + MEAN)[0] * 255).round().long()
        valid = out_mask != 255
        assert torch.equal(red[valid], out_mask[valid] * 10)


def test_padding_uses_mean_and_ignore():
    image, mask = item(10, 12)
    mask[mask == 255] = 0
    out_image, out_mask = train_transform(32, scale_range=(1.0, 1.0), hflip=False)(image, mask)
    padded = out_mask == 255
    assert padded.sum() == 32 * 32 - 10 * 12
    assert out_image[:, padded].abs().max() < 0.02  # mean colour normalises to ~0


def test_eval_transform_only_normalises():
    image, mask = item()
    out_image, out_mask = eval_transform()(image, mask)
    assert torch.equal(out_mask, mask)
    assert torch.allclose(out_image, (image / 255 - MEAN) / STD, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs", [{"crop_size": 0}, {"crop_size": (32, -1)}, {"crop_size": 32, "scale_range": (2.0, 0.5)},
               {"crop_size": 32, "scale_range": (0.0, 1.0)}, {"crop_size": 32, "std": (0.2, 0.2, 0.0)}]
)  # fmt: skip
def test_impossible_settings_rejected(kwargs):
    with pytest.raises(ValueError):
        train_transform(**kwargs)
