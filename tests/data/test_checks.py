import numpy as np
import pytest

from cotrain.data.__main__ import main

BASE = "VOC2012"


def break_data(root, kind, make):
    """Introduce one kind of problem into the VOC fixture; returns the file to be named."""
    base = root / BASE
    if kind == "missing mask":
        path = base / "SegmentationClass" / "2007_000002.png"
        path.unlink()
    elif kind == "missing image":
        path = base / "JPEGImages" / "2007_000002.jpg"
        path.unlink()
    elif kind == "unreadable image":
        path = base / "JPEGImages" / "2007_000002.jpg"
        path.write_bytes(b"not a jpeg")
    elif kind == "unreadable mask":
        path = base / "SegmentationClass" / "2007_000002.png"
        path.write_bytes(b"\x89PNG truncated")
    elif kind == "size mismatch":  # named under the mask, with both sizes
        make.image(base / "JPEGImages" / "2007_000002.jpg", np.random.default_rng(0), size=(make.H + 2, make.W))
        path = base / "SegmentationClass" / "2007_000002.png"
    elif kind == "bad label values":
        path = base / "SegmentationClass" / "2007_000002.png"
        make.palette_png(path, np.full((make.H, make.W), 21))
    return path


def test_clean_data_exits_zero(voc_root, capsys):
    root, _ = voc_root
    assert main(["check", "--dataset", "voc", "--root", str(root)]) == 0
    assert "OK: 3 voc train pairs" in capsys.readouterr().out


@pytest.mark.parametrize(
    "kind",
    ["missing mask", "missing image", "unreadable image", "unreadable mask", "size mismatch", "bad label values"],
)
def test_each_problem_is_reported(voc_root, make, capsys, kind):
    root, _ = voc_root
    path = break_data(root, kind, make)
    assert main(["check", "--dataset", "voc", "--root", str(root), "--split", "train"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines == [line for line in lines if line.startswith(kind)] and len(lines) == 2
    assert lines[0].startswith(f"{kind}: {path}: ") and lines[1].startswith(f"{kind}: 1 file(s) (")


def test_every_problem_counted_in_one_run(voc_root, make, capsys):
    root, _ = voc_root
    for image_id in ("2007_000001", "2008_000003"):
        make.palette_png(root / BASE / "SegmentationClass" / f"{image_id}.png", np.full((make.H, make.W), 30))
    break_data(root, "missing mask", make)
    assert main(["check", "--dataset", "voc", "--root", str(root)]) == 2
    out = capsys.readouterr().out
    assert "bad label values: 2 file(s)" in out and "missing mask: 1 file(s)" in out
    for image_id in ("2007_000001", "2008_000003"):  # every file named, with its reason
        assert f"{image_id}.png: label value 30 is outside 0..20 and 255" in out


def test_missing_root_and_split_file(voc_root, tmp_path, capsys):
    root, _ = voc_root
    assert main(["check", "--dataset", "voc", "--root", str(tmp_path / "nowhere")]) == 2
    (root / BASE / "ImageSets" / "Segmentation" / "train.txt").unlink()
    assert main(["check", "--dataset", "voc", "--root", str(root)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "nowhere" in err[0] and "train.txt" in err[1]


def test_subprocess_exit_code(voc_root):
    import subprocess
    import sys

    root, _ = voc_root
    (root / BASE / "SegmentationClass" / "2007_000001.png").unlink()
    run = subprocess.run([sys.executable, "-m", "cotrain.data", "check", "--dataset", "voc", "--root", str(root)],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 2 and "missing mask: 1 file(s)" in run.stdout


def test_every_split_is_checked_by_default(voc_root, make, capsys):
    """Issue #25: a broken mask in ``val`` was missed (only ``train`` was checked) and the check said OK."""
    root, _ = voc_root
    bad = root / BASE / "SegmentationClass" / "2009_000005.png"  # a val mask
    make.palette_png(bad, np.full((make.H, make.W), 30))
    assert main(["check", "--dataset", "voc", "--root", str(root)]) == 2
    out = capsys.readouterr().out
    assert f"bad label values: {bad}: label value 30 is outside 0..20 and 255" in out and "OK" not in out
    assert main(["check", "--dataset", "voc", "--root", str(root), "--split", "train"]) == 0  # one split, as asked
    assert "OK: 3 voc train pairs checked, no problems" in capsys.readouterr().out


def test_clean_data_reports_each_split_and_skips_an_absent_test_split(camvid_root, make, capsys):
    rng = np.random.default_rng(2)
    make.image(camvid_root / "val" / "0016E5_07959.png", rng)
    make.grey_png(camvid_root / "valannot" / "0016E5_07959.png", rng.integers(0, 12, (make.H, make.W)))
    assert main(["check", "--dataset", "camvid", "--root", str(camvid_root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "OK: 2 camvid train pairs, 1 val pairs checked, no problems", lines
    assert any(line.startswith("note: ") and "test" in line for line in lines), lines
