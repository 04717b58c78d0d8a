import pytest
import torch

from cotrain.engine.inference import EvalProtocol, window_starts


class Recorder(torch.nn.Module):
    """A 1x1 conv that records the input sizes it sees and requires multiples of 32."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, classes, 1)
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] % 32 == 0 and x.shape[-1] % 32 == 0
        self.shapes.append(tuple(x.shape))
        return self.conv(x)


@pytest.mark.parametrize("size", [(70, 90), (64, 64), (20, 25), (130, 33)])
@torch.no_grad()
def test_sliding_equals_whole_for_pointwise_model(size):
    torch.manual_seed(0)
    model = Recorder()
    images = torch.randn(2, 3, *size)
    whole = EvalProtocol("whole").predict(model, images)
    sliding = EvalProtocol("sliding", window=64, stride=40, window_batch=3).predict(model, images)
    assert whole.shape == sliding.shape == (2, 4, *size)
    torch.testing.assert_close(sliding, whole)
    assert all(shape[0] <= 3 for shape in model.shapes[1:])


@torch.no_grad()
def test_padding_is_cropped_back_and_pads_with_zero():
    images = torch.randn(1, 3, 45, 70)
    seen = []

    def model(x):
        seen.append(x)
        return x[:, :2]

    out = EvalProtocol("whole").predict(model, images)
    assert seen[0].shape == (1, 3, 64, 96) and out.shape == (1, 2, 45, 70)
    assert torch.equal(out, images[:, :2]) and seen[0][..., 45:, :].abs().max() == 0


def test_window_starts_cover_and_end_flush():
    assert window_starts(100, 64, 40) == [0, 36]
    assert window_starts(64, 64, 40) == [0]
    assert window_starts(200, 64, 64) == [0, 64, 128, 136]


def test_center_crop_pads_mask_with_ignore_and_image_with_mean():
    image = torch.full((3, 20, 30), 7, dtype=torch.uint8)
    mask = torch.zeros(20, 30, dtype=torch.int64)
    out_image, out_mask = EvalProtocol("center_crop", crop=32).prepare(image, mask)
    assert out_image.shape == (3, 32, 32) and out_mask.shape == (32, 32)
    assert (out_mask == 255).sum() == 32 * 32 - 20 * 30 and (out_mask == 0).sum() == 20 * 30
    assert out_image[:, 0, 0].tolist() == [124, 116, 104]
    big_image, big_mask = torch.zeros(3, 50, 60, dtype=torch.uint8), torch.arange(50 * 60).view(50, 60)
    _, cropped = EvalProtocol("center_crop", crop=32).prepare(big_image, big_mask)
    assert torch.equal(cropped, big_mask[9:41, 14:46])


def test_resize_uses_nearest_for_mask():
    mask = torch.randint(0, 3, (40, 48))
    mask[0] = 255
    image, out_mask = EvalProtocol("resize", size=(36, 50)).prepare(torch.zeros(3, 40, 48, dtype=torch.uint8), mask)
    assert image.shape == (3, 36, 50) and out_mask.shape == (36, 50) and out_mask.dtype == torch.int64
    assert set(out_mask.unique().tolist()) <= {0, 1, 2, 255}


def test_whole_leaves_item_unchanged():
    image, mask = torch.zeros(3, 5, 7, dtype=torch.uint8), torch.ones(5, 7, dtype=torch.int64)
    out_image, out_mask = EvalProtocol("whole").prepare(image, mask)
    assert torch.equal(out_image, image) and torch.equal(out_mask, mask)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"kind": "tiles"}, "'tiles'.*whole, center_crop"), ({"kind": "sliding", "stride": 2000}, "stride 2000"),
     ({"crop": 0}, "crop"), ({"size": (0, 480)}, "size")],
)  # fmt: skip
def test_invalid_protocols_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EvalProtocol(**kwargs)


def test_describe():
    assert EvalProtocol("resize", size=(360, 480)).describe() == "whole image at 360x480"
    assert EvalProtocol("sliding").describe() == "sliding window 1024/768"
    assert EvalProtocol("center_crop").describe() == "center-crop 512"


# 1 + 2^-7 is exact in bf16, but the sum of three (3.0234375) needs 8 mantissa bits: a bf16 sum rounds it.
ONE_PLUS_ULP = 1.0 + 2.0 ** -7


def constant_bf16_model(x: torch.Tensor) -> torch.Tensor:
    """Logits as a bf16-autocast model returns them: bf16, every value 1 + 2^-7."""
    return torch.full((x.shape[0], 2, *x.shape[-2:]), ONE_PLUS_ULP, dtype=torch.bfloat16)


@pytest.mark.parametrize("kind", ["whole", "sliding"])
@torch.no_grad()
def test_logits_are_accumulated_and_returned_in_fp32(kind):
    # Sliding: windows of 64 every 16 on 96 pixels: the middle columns are covered by three windows.
    protocol = EvalProtocol(kind, window=64, stride=16)
    logits = protocol.predict(constant_bf16_model, torch.zeros(1, 3, 64, 96))
    assert logits.dtype == torch.float32
    assert torch.equal(logits, torch.full_like(logits, ONE_PLUS_ULP))


@torch.no_grad()
def test_bf16_autocast_model_gives_fp32_logits_on_cpu():
    torch.manual_seed(0)
    model, images = Recorder(), torch.randn(1, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        whole = EvalProtocol("whole").predict(model, images)
        sliding = EvalProtocol("sliding", window=32, stride=16).predict(model, images)
        raw = model(images)
    assert raw.dtype == torch.bfloat16 and whole.dtype == sliding.dtype == torch.float32
    torch.testing.assert_close(whole, raw.float(), rtol=0, atol=0)
    torch.testing.assert_close(sliding, raw.float(), rtol=0, atol=0)  # fp32 means of equal bf16 tiles are exact


def test_eval_size_resizes_whole_images_and_needs_the_resize_protocol():
    from cotrain.config import resolve
    from cotrain.data import get_spec
    from cotrain.engine.data import eval_protocol
    from cotrain.errors import ConfigError

    cfg = resolve("cpu", overrides={"dataset": "camvid"})
    protocol = eval_protocol(cfg, get_spec("camvid"))
    assert (protocol.kind, protocol.size) == ("resize", (180, 240))
    assert eval_protocol(cfg.replace(eval_size=None), get_spec("camvid")).size == (360, 480)
    with pytest.raises(ConfigError, match="eval_size=180x240 is invalid with eval_protocol=whole"):
        eval_protocol(cfg.replace(eval_protocol="whole"), get_spec("camvid"))


# Two class logits 1 and 1 + 2^-9: fp32 keeps them apart, bf16 (8 significant bits, spacing 2^-7 at 1) makes them equal.
NEAR_TIE = (1.0, 1.0 + 2.0 ** -9)


def near_tie_pair():
    """A real student pair whose heads put class 1 above class 0 by less than bf16 can represent, everywhere."""
    from cotrain.pair import build_pair
    torch.manual_seed(0)
    pair = build_pair("mobilenet_v2", "mit_b0", 2, None, "vanilla").eval()
    for student in (pair.cnn, pair.vit):
        conv = student.model.segmentation_head[0]
        torch.nn.init.zeros_(conv.weight)
        conv.bias.data = torch.tensor(NEAR_TIE)
    return pair


@pytest.mark.parametrize("kind", ["whole", "sliding"])
@torch.no_grad()
def test_evaluation_head_runs_in_fp32_under_bf16_autocast(kind):
    """docs/method.md, "Evaluation": casting bf16 logits to fp32 afterwards would keep the tie; the head must run
    in fp32, so the argmax sees class 1 win by 2^-9."""
    pair, images = near_tie_pair(), torch.randn(1, 3, 64, 96)
    protocol = EvalProtocol(kind, window=64, stride=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        training_logits = pair.cnn(images).logits  # the training forward keeps autocast's dtype
        logits = protocol.predict(lambda x: torch.cat(pair.predict(x), dim=1), images)
    assert training_logits.dtype == torch.bfloat16 and torch.equal(training_logits[:, 0], training_logits[:, 1])
    assert logits.dtype == torch.float32
    for side in (logits[:, :2], logits[:, 2:]):
        assert torch.equal(side.argmax(1), torch.ones_like(side[:, 0], dtype=torch.long))
        torch.testing.assert_close(side[:, 1] - side[:, 0], torch.full_like(side[:, 0], 2.0 ** -9), rtol=0, atol=1e-6)
