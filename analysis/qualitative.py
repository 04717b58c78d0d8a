"""Fig. 4-style figure: image | ground truth | Vanilla CNN | Ours CNN | Vanilla ViT | Ours ViT.

Predictions come from the sweep's own checkpoints
(``<experiment>/_train/train-<trial_id>/checkpoint_*/checkpoint.pt``, newest by
name), loaded with ``cotrain.engine.checkpoint.load_pair_from_checkpoint``; images
from ``cotrain.data.get_dataset(name, root, "val")``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.plots import plt, save
from analysis.results import FINISHED, Results, load_results
from cotrain.data.checks import IGNORE_INDEX

COLUMNS = ("Image", "Ground truth", "Vanilla CNN", "Ours CNN", "Vanilla ViT", "Ours ViT")
IGNORE_COLOUR = (255, 255, 255)


def newest_checkpoint(experiment_dir: Path, trial_id: str) -> Path:
    """The newest ``checkpoint.pt`` of a trial (checkpoint folders sort by their zero-padded index).

    Raises:
        FileNotFoundError: The trial saved no checkpoint.
    """
    found = sorted((experiment_dir / "_train" / f"train-{trial_id}").glob("checkpoint_*/checkpoint.pt"))
    if not found:
        folder = experiment_dir / "_train" / f"train-{trial_id}"
        raise FileNotFoundError(f"no checkpoint_*/checkpoint.pt under {folder}")
    return found[-1]


def pick_trials(trials: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """A finished Vanilla and Ours trial of the same experiment, pair, dataset and seed.

    Raises:
        LookupError: No such couple exists.
    """
    done = trials[trials["status"] == FINISHED]
    keys = ["experiment", "cnn", "vit", "dataset", "seed"]
    vanilla, ours = done[done["method"] == "vanilla"], done[done["method"] == "ours"]
    matched = vanilla.merge(ours[keys + ["trial_id"]], on=keys, suffixes=("", "_ours"))
    if matched.empty:
        raise LookupError("no finished Vanilla and Ours trials share an experiment, pair, dataset and seed")
    first = matched.iloc[0]
    same_trial = (ours["trial_id"] == first["trial_id_ours"]) & (ours["experiment"] == first["experiment"])
    return first, ours[same_trial].iloc[0]


def colourise(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) class indices → (H, W, 3) uint8 colours; ignored pixels white."""
    out = np.empty((*mask.shape, 3), dtype=np.uint8)
    valid = mask != IGNORE_INDEX
    out[valid] = palette[np.clip(mask[valid], 0, len(palette) - 1)]
    out[~valid] = IGNORE_COLOUR
    return out


def predict(pair, image, transform) -> tuple[np.ndarray, np.ndarray]:
    """Argmax predictions (H, W) of both students for one uint8 image (3, H, W), padded to a multiple
    of 32 and cropped back as the evaluation does (``cotrain.engine.inference.padded_forward``)."""
    import torch

    from cotrain.engine.inference import padded_forward

    tensor = transform(image, torch.zeros(image.shape[1:], dtype=torch.int64))[0].float()[None]
    with torch.no_grad():  # both students in one padded forward: their logits side by side on the channels
        both = padded_forward(lambda x: torch.cat(pair.predict(x), dim=1), tensor, 32)[0]
    return tuple(lg.argmax(0).cpu().numpy() for lg in both.chunk(2, dim=0))


def load_pair(checkpoint: Path):
    """The trained pair of a checkpoint, in eval mode on the CPU."""
    from cotrain.engine.checkpoint import load_pair_from_checkpoint

    pair, _config = load_pair_from_checkpoint(checkpoint)
    return pair.eval()


def figure_rows(vanilla, ours, dataset, count: int, transform) -> list[list[np.ndarray]]:
    """The six panels of each of the first ``count`` validation images."""
    palette = np.asarray(dataset.palette, dtype=np.uint8)
    rows = []
    for index in range(min(count, len(dataset))):
        image, mask = dataset[index]
        vanilla_cnn, vanilla_vit = predict(vanilla, image, transform)
        ours_cnn, ours_vit = predict(ours, image, transform)
        masks = [mask.numpy(), vanilla_cnn, ours_cnn, vanilla_vit, ours_vit]
        rows.append([image.permute(1, 2, 0).numpy()] + [colourise(m, palette) for m in masks])
    return rows


def draw(rows: list[list[np.ndarray]], title: str, stem: Path) -> list[Path]:
    """Lay out the panels as a grid with the Fig. 4 column titles."""
    fig, axes = plt.subplots(len(rows), len(COLUMNS), figsize=(2.2 * len(COLUMNS), 2.0 * len(rows)), squeeze=False)
    for r, panels in enumerate(rows):
        for c, panel in enumerate(panels):
            axes[r, c].imshow(panel)
            axes[r, c].axis("off")
            if r == 0:
                axes[r, c].set_title(COLUMNS[c], fontsize=8)
    fig.suptitle(title, fontsize=9)
    return save(fig, stem)


def make_qualitative(results: Results, count: int, out: Path, data_root: Path | None = None) -> list[Path]:
    """Fig. 4 for ``count`` validation images from a Vanilla/Ours couple of checkpoints.

    Args:
        results: Loaded results (:func:`analysis.results.load_results`).
        count: Number of validation images (rows).
        out: Output folder; writes ``qualitative_<experiment>.png``/``.pdf``.
        data_root: Dataset root; default: the trials' ``data_root`` config key (``None``
            lets generated datasets such as ``builtin`` make their own).
    """
    vanilla, ours = pick_trials(results.trials)
    experiment = Path(vanilla["trial_dir"]).parent
    checkpoints = [newest_checkpoint(experiment, t["trial_id"]) for t in (vanilla, ours)]
    from cotrain.data import get_dataset
    from cotrain.data.transforms import eval_transform

    root = data_root if data_root is not None else _config_value(vanilla, "data_root")
    dataset = get_dataset(vanilla["dataset"], root, "val")
    models = [load_pair(path) for path in checkpoints]
    rows = figure_rows(*models, dataset, count, eval_transform())
    title = f"{vanilla['cnn']} + {vanilla['vit']} on {vanilla['dataset']} (seed {vanilla['seed']}, {experiment.name})"
    return draw(rows, title, out / f"qualitative_{experiment.name}")


def _config_value(trial: pd.Series, key: str):
    """A config key absent from the summary frame, read back from ``params.json``."""
    import json

    params = Path(trial["trial_dir"]) / "params.json"
    return json.loads(params.read_text()).get(key) if params.is_file() else None


def main(argv: list[str] | None = None) -> int:
    """``python analysis/qualitative.py --results DIR -n N [--out DIR] [--data-root DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("-n", type=int, default=4, help="number of validation images")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--data-root", type=Path)
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        print(f"qualitative.py: error: --results {args.results}: no such directory", file=sys.stderr)
        return 2
    paths = make_qualitative(load_results(args.results), args.n, args.out or args.results / "tables", args.data_root)
    print("wrote:", *map(str, paths), sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
