"""A small generated dataset in the VOC layout, read by the VOC reader.

Each image shows 1-4 objects on a cluttered textured background. The class is the
object's shape, and for discs also its texture (striped discs are their own class),
so colour alone never tells classes apart: each class has a hue range that overlaps its
neighbours' (a prior, not a lookup), objects are saturated and the cluttered background
grey-ish, and most textures are shared by every class and the background. Objects
overlap (later ones occlude earlier ones) and, as in VOC, a 255 band marks every
boundary between labels.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from cotrain.data.base import DatasetSpec, register_dataset
from cotrain.data.checks import IGNORE_INDEX
from cotrain.data.voc import VOCSegmentation, voc_colormap

BUILTIN_VERSION = "builtin-v3"
BUILTIN_CLASSES = ("background", "disc", "rectangle", "triangle", "ring", "star", "cross", "striped disc")
BUILTIN_PALETTE = tuple(tuple(int(c) for c in rgb) for rgb in voc_colormap(len(BUILTIN_CLASSES)))
SHARED_TEXTURES = ("solid", "checker", "noise", "gradient")
BACKGROUND_TEXTURES = SHARED_TEXTURES + ("stripes",)

Rng = np.random.Generator


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32), indexing="xy")


def _two_colours(rng: Rng) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(0, 1, 3).astype(np.float32), rng.uniform(0, 1, 3).astype(np.float32)


def class_colours(rng: Rng, cls: int) -> tuple[np.ndarray, np.ndarray]:
    """Two saturated colours near the class's hue (±35°: neighbouring classes overlap).

    Background and clutter are desaturated instead: colour is a prior that gets a short
    CPU run started, while shape and texture are needed to tell neighbouring classes apart.
    """
    hue = (cls / (len(BUILTIN_CLASSES) - 1) + rng.normal(0, 35 / 360)) % 1.0
    return tuple(_hsv(hue, rng.uniform(0.55, 1.0), rng.uniform(0.45, 1.0)) for _ in range(2))


def grey_colours(rng: Rng) -> tuple[np.ndarray, np.ndarray]:
    return tuple(_hsv(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.15, 0.95)) for _ in range(2))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    import colorsys
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32)


def texture(rng: Rng, kind: str, size: int, colours: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Draw a random texture of ``kind`` (solid, stripes, checker, noise, gradient).

    Returns:
        float32 array (size, size, 3) in [0, 1].
    """
    a, b = colours if colours is not None else _two_colours(rng)
    if kind == "solid":
        return np.broadcast_to(a, (size, size, 3)).copy()
    x, y = _grid(size)
    angle = rng.uniform(0, np.pi)
    u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
    if kind == "stripes":
        weight = np.sin(2 * np.pi * u / rng.uniform(4, 10)) > 0
    elif kind == "checker":
        cell = rng.uniform(4, 10)
        weight = (np.floor(u / cell) + np.floor(v / cell)) % 2 == 0
    elif kind == "noise":
        coarse = Image.fromarray(rng.uniform(0, 255, (size // 8 + 1, size // 8 + 1)).astype(np.uint8))
        weight = np.asarray(coarse.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255
    elif kind == "gradient":
        weight = (u - u.min()) / (u.max() - u.min())
    else:
        raise ValueError(f"unknown texture {kind!r}; allowed: solid, {', '.join(BACKGROUND_TEXTURES[1:])}")
    weight = np.asarray(weight, dtype=np.float32)[..., None]
    return a * weight + b * (1 - weight)


def _polygon(centre: np.ndarray, radii: np.ndarray, angles: np.ndarray, rotation: float) -> list[tuple[float, float]]:
    xs = centre[0] + radii * np.cos(angles + rotation)
    ys = centre[1] + radii * np.sin(angles + rotation)
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


def _ellipse(centre: np.ndarray, r: float, aspect: float, rotation: float) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    x, y = r * np.cos(t), r * aspect * np.sin(t)
    radii, angles = np.hypot(x, y), np.arctan2(y, x)
    return _polygon(centre, radii, angles, rotation)


def shape_outlines(
    name: str, centre: np.ndarray, r: float, rotation: float, rng: Rng
) -> list[list[tuple[float, float]]]:
    """Polygons of one shape; the first is filled, any further ones are cut out (the ring's hole)."""
    k = np.arange(12)
    if name in ("disc", "striped disc"):
        return [_ellipse(centre, r, rng.uniform(0.85, 1.0), rotation)]
    if name == "ring":
        aspect = rng.uniform(0.85, 1.0)
        return [_ellipse(centre, r, aspect, rotation), _ellipse(centre, r * rng.uniform(0.45, 0.6), aspect, rotation)]
    if name == "rectangle":
        half = np.array([1.0, rng.uniform(0.35, 0.75)]) * r
        corners = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * half
        return [_polygon(centre, np.hypot(*corners.T), np.arctan2(corners[:, 1], corners[:, 0]), rotation)]
    if name == "triangle":
        return [_polygon(centre, np.full(3, r), np.arange(3) * 2 * np.pi / 3, rotation)]
    if name == "star":
        return [_polygon(centre, np.where(k[:10] % 2 == 0, r, r * 0.42), k[:10] * np.pi / 5, rotation)]
    if name == "cross":
        w = 0.33 * r
        arm = np.array(
            [[w, w], [w, r], [-w, r], [-w, w], [-r, w], [-r, -w], [-w, -w], [-w, -r], [w, -r], [w, -w], [r, -w], [r, w]]
        )
        return [_polygon(centre, np.hypot(*arm.T), np.arctan2(arm[:, 1], arm[:, 0]), rotation)]
    raise ValueError(f"unknown shape {name!r}; allowed: {', '.join(BUILTIN_CLASSES[1:])}")


def rasterise(outlines: list[list[tuple[float, float]]], size: int) -> np.ndarray:
    """Fill the first polygon and cut out the others.

    Returns:
        bool array (size, size).
    """
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    draw.polygon(outlines[0], fill=1)
    for hole in outlines[1:]:
        draw.polygon(hole, fill=0)
    return np.asarray(canvas, dtype=bool)


def _clutter(rng: Rng, image: np.ndarray) -> None:
    """Paint irregular blobs and lines that belong to the background."""
    size = image.shape[0]
    for _ in range(rng.integers(1, 4)):
        n = rng.integers(5, 9)
        outline = _polygon(rng.uniform(0, size, 2), rng.uniform(0.3, 1.0, n) * rng.uniform(6, 22),
                           np.sort(rng.uniform(0, 2 * np.pi, n)), 0.0)  # fmt: skip
        blob = rasterise([outline], size)
        image[blob] = texture(rng, str(rng.choice(BACKGROUND_TEXTURES)), size, grey_colours(rng))[blob]
    lines = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(lines)
    for _ in range(rng.integers(1, 5)):
        draw.line(rng.uniform(0, size, 4).tolist(), fill=1, width=int(rng.integers(1, 4)))
    mask = np.asarray(lines, dtype=bool)
    image[mask] = grey_colours(rng)[0]


def render_sample(rng: Rng, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image and its VOC-style label map.

    Returns:
        image uint8 (size, size, 3) and label uint8 (size, size) with class indices
        and 255 on boundaries.
    """
    image = texture(rng, str(rng.choice(BACKGROUND_TEXTURES)), size, grey_colours(rng))
    _clutter(rng, image)
    label = np.zeros((size, size), dtype=np.uint8)
    # Objects cover about half the image, so a short CPU run learns more than "all background".
    for _ in range(rng.integers(2, 6)):
        cls = int(rng.integers(1, len(BUILTIN_CLASSES)))
        name = BUILTIN_CLASSES[cls]
        r = rng.uniform(0.14, 0.32) * size
        region = rasterise(
            shape_outlines(name, rng.uniform(0.1, 0.9, 2) * size, r, rng.uniform(0, 2 * np.pi), rng), size
        )
        kind = "stripes" if name == "striped disc" else str(rng.choice(SHARED_TEXTURES))
        image[region] = texture(rng, kind, size, class_colours(rng, cls))[region]
        label[region] = cls
    boundary = ndimage.grey_dilation(label, size=3) != ndimage.grey_erosion(label, size=3)
    label[boundary] = IGNORE_INDEX
    blurred = Image.fromarray((image * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    noisy = np.asarray(blurred, dtype=np.float32) + rng.normal(0, rng.uniform(2, 10), (size, size, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8), label


def generate_builtin(
    root: str | Path, *, num_train: int = 300, num_val: int = 60, size: int = 160, seed: int = 0
) -> Path:
    """Write the builtin dataset in the VOC layout under ``root``.

    Every image has its own generator seeded by ``(seed, split, index)``, so the
    output depends only on these arguments.

    Returns:
        ``root``, holding ``JPEGImages/``, ``SegmentationClass/`` (VOC palette PNGs)
        and ``ImageSets/Segmentation/{train,val}.txt``.
    """
    if min(num_train, num_val) < 1 or size < 32:
        raise ValueError(f"need num_train, num_val >= 1 and size >= 32; got {num_train}, {num_val}, {size}")
    root = Path(root)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    palette = voc_colormap().flatten().tolist()
    for split_index, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        ids = [f"{split}_{i:05d}" for i in range(count)]
        for i, name in enumerate(ids):
            image, label = render_sample(np.random.default_rng([seed, split_index, i]), size)
            Image.fromarray(image).save(root / "JPEGImages" / f"{name}.jpg", quality=90)
            mask = Image.fromarray(label, mode="P")
            mask.putpalette(palette)
            mask.save(root / "SegmentationClass" / f"{name}.png")
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def default_builtin_root() -> Path:
    """``$COTRAIN_DATA_HOME/<BUILTIN_VERSION>``, with ``COTRAIN_DATA_HOME`` defaulting to ``~/.cache/cotrain``."""
    return Path(os.environ.get("COTRAIN_DATA_HOME", "~/.cache/cotrain")).expanduser() / BUILTIN_VERSION


def ensure_builtin(root: str | Path | None = None) -> Path:
    """Return the builtin dataset's root, generating it with the defaults if absent.

    Generation happens in a hidden temporary sibling directory that is renamed into
    place, so a killed run never leaves a partial dataset at ``root``.
    """
    root = default_builtin_root() if root is None else Path(root).expanduser()
    if root.exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        generate_builtin(tmp)
        try:
            os.replace(tmp, root)
        except OSError:
            if not root.is_dir():
                raise  # otherwise a concurrent run finished first and its copy is as good
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


register_dataset(
    DatasetSpec(
        name="builtin",
        classes=BUILTIN_CLASSES,
        palette=BUILTIN_PALETTE,
        reader=VOCSegmentation,
        eval_protocol={"kind": "whole"},
        crop_size=160,
        ensure_root=ensure_builtin,
    )
)
