"""MVTec AD / VisA loaders (real bottle class, a VisA fixture in the published layout) and pixel AUROC."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from usfkit import metrics
from usfkit.data import MVTEC_CLASSES, VISA_CLASSES, MVTecAD, VisA, mvtec_available

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BOTTLE = SHARED / "mvtec_ad_256"
needs_bottle = pytest.mark.skipif(not (BOTTLE / "bottle").is_dir(), reason="real MVTec AD bottle class not present")


@needs_bottle
def test_mvtec_bottle_counts_match_the_files():
    train = MVTecAD("bottle", "train", 64, root=BOTTLE)
    test = MVTecAD("bottle", "test", 64, root=BOTTLE)
    n_train = len(list((BOTTLE / "bottle/train/good").glob("*.png")))
    test_dirs = {d.name: len(list(d.glob("*.png"))) for d in (BOTTLE / "bottle/test").iterdir()}
    n_masks = len(list((BOTTLE / "bottle/ground_truth").glob("*/*_mask.png")))
    assert len(train) == n_train and train.labels.sum() == 0
    assert len(test) == sum(test_dirs.values())
    assert int(test.labels.sum()) == len(test) - test_dirs["good"] == n_masks
    assert {s[3] for s in test.samples} == set(test_dirs)


@needs_bottle
def test_mvtec_items_masks_binary_and_sized_like_images():
    test = MVTecAD("bottle", "test", 48, root=BOTTLE)
    for i in (0, len(test) - 1, 30):
        item = test[i]
        assert item["image"].shape == (3, 48, 48) and item["mask"].shape == (1, 48, 48)
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
        if item["label"] == 1:
            assert item["mask"].sum() > 0 and item["defect"] != "good"
        else:
            assert item["mask"].sum() == 0
    # ImageNet normalisation: roughly zero-mean, unit-scale channels, not raw [0, 255]
    assert test[0]["image"].abs().max() < 3.0


@needs_bottle
def test_mvtec_found_through_the_data_dir(monkeypatch):
    monkeypatch.setenv("USFKIT_DATA", str(SHARED))
    assert "bottle" in mvtec_available()
    assert len(MVTecAD("bottle", "train", 32)) > 0  # mvtec_ad_256 is one of the searched folder names


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="valid classes: bottle"):
        MVTecAD("bottel", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="mvtec.com"):
        MVTecAD("cable", root=tmp_path)
    with pytest.raises(ValueError, match="candle"):
        VisA("candel", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="spot-diff"):
        VisA("pcb1", root=tmp_path)
    # a defective test image without its mask
    (tmp_path / "grid/test/bent").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "grid/test/bent/000.png")
    with pytest.raises(FileNotFoundError, match="no mask"):
        MVTecAD("grid", "test", root=tmp_path)
    assert len(MVTEC_CLASSES) == 15 and len(VISA_CLASSES) == 12


def _visa_fixture(root: Path, n_train=4, n_normal=2, n_anom=3, size=40, cls="pcb1"):
    """A tiny VisA class in the published layout, with the 1cls.csv split."""
    rng = np.random.default_rng(0)
    base = root / cls / "Data"
    for sub in ("Images/Normal", "Images/Anomaly", "Masks/Anomaly"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    rows = ["object,split,label,image,mask"]
    for i in range(n_train + n_normal):
        pixels = rng.integers(0, 255, (size, size + 10, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(base / f"Images/Normal/{i:04d}.JPG")
        split = "train" if i < n_train else "test"
        rows.append(f"{cls},{split},normal,{cls}/Data/Images/Normal/{i:04d}.JPG,")
    for i in range(n_anom):
        pixels = rng.integers(0, 255, (size, size + 10, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(base / f"Images/Anomaly/{i:03d}.JPG")
        mask = np.zeros((size, size + 10), np.uint8)
        mask[5:15, 10:20] = i + 1  # VisA masks carry small non-zero values, not 255
        Image.fromarray(mask).save(base / f"Masks/Anomaly/{i:03d}.png")
        rows.append(f"{cls},test,anomaly,{cls}/Data/Images/Anomaly/{i:03d}.JPG,{cls}/Data/Masks/Anomaly/{i:03d}.png")
    rows.append("candle,train,normal,candle/Data/Images/Normal/0000.JPG,")  # another class: ignored
    (root / "split_csv").mkdir()
    (root / "split_csv/1cls.csv").write_text("\n".join(rows) + "\n")


def test_visa_loader_on_a_fixture(tmp_path):
    _visa_fixture(tmp_path)
    train, test = VisA("pcb1", "train", 32, root=tmp_path), VisA("pcb1", "test", 32, root=tmp_path)
    assert len(train) == 4 and train.labels.sum() == 0
    assert len(test) == 5 and test.labels.tolist() == [0, 0, 1, 1, 1]
    item = test[3]
    assert item["image"].shape == (3, 32, 32) and item["mask"].shape == (1, 32, 32)
    assert set(item["mask"].unique().tolist()) == {0.0, 1.0}
    # the 10x10 defect of a 40x50 image covers 10/40 * 10/50 of the resized mask
    assert item["mask"].mean().item() == pytest.approx(0.25 * 0.2, abs=0.02)
    assert test[0]["mask"].sum() == 0
    os.remove(tmp_path / "pcb1/Data/Masks/Anomaly/001.png")
    with pytest.raises(FileNotFoundError, match="no mask"):
        VisA("pcb1", "test", root=tmp_path)
    (tmp_path / "split_csv/1cls.csv").unlink()
    with pytest.raises(FileNotFoundError, match="1cls.csv"):
        VisA("pcb1", "train", root=tmp_path)


def _mvtec_fixture(root: Path, cls: str, size=24) -> None:
    """A tiny class in the MVTec AD layout: 3 train/good, 1 test/good, 2 test/scratch with masks."""
    rng = np.random.default_rng(0)
    for sub, n in (("train/good", 3), ("test/good", 1), ("test/scratch", 2)):
        (root / cls / sub).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / sub / f"{i:03d}.png")
    (root / cls / "ground_truth/scratch").mkdir(parents=True)
    for i in range(2):
        mask = np.zeros((size, size), np.uint8)
        mask[4:10, 4:10] = 255
        Image.fromarray(mask).save(root / cls / f"ground_truth/scratch/{i:03d}_mask.png")


def test_own_data_in_the_mvtec_layout_loads_under_its_own_class_name(tmp_path, monkeypatch):
    _mvtec_fixture(tmp_path, "widget")
    train, test = MVTecAD("widget", "train", 16, root=tmp_path), MVTecAD("widget", "test", 16, root=tmp_path)
    assert len(train) == 3 and train.labels.sum() == 0
    assert test.labels.tolist() == [0, 1, 1] and [s[3] for s in test.samples] == ["good", "scratch", "scratch"]
    assert test[2]["mask"].sum() == 16  # the 6x6 defect of 24 px, resized to 16 px: 4x4
    # a class folder that is not there: the error lists what is there
    with pytest.raises(ValueError, match=r"no class folder 'gadget' under .*folders found there: widget"):
        MVTecAD("gadget", root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"'cable' not found in .*folders found there: widget"):
        MVTecAD("cable", root=tmp_path)
    # without root= only MVTec AD's own classes are searched for, and the error says how to load your own
    monkeypatch.setenv("USFKIT_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="pass root="):
        MVTecAD("widget")


def test_own_data_in_the_visa_layout_loads_under_its_own_class_name(tmp_path):
    _visa_fixture(tmp_path, cls="gizmo")
    assert len(VisA("gizmo", "train", 16, root=tmp_path)) == 4
    assert VisA("gizmo", "test", 16, root=tmp_path).labels.tolist() == [0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match=r"folders found there: gizmo, split_csv"):
        VisA("gadget", root=tmp_path)


def test_feature_cache_key_follows_file_contents(tmp_path):
    """An image or mask edited in place gives another cache key (stale features are never reused)."""
    from usfkit.image.features import content_id

    _mvtec_fixture(tmp_path, "widget")
    test = MVTecAD("widget", "test", 16, root=tmp_path)
    key = content_id(test)
    assert content_id(MVTecAD("widget", "test", 16, root=tmp_path)) == key  # same files, same key
    mask = tmp_path / "widget/ground_truth/scratch/001_mask.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 2, (24, 24), dtype=np.uint8) * 255).save(mask)
    edited = content_id(test)
    assert edited != key
    image = tmp_path / "widget/test/good/000.png"
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten a second later, same size
    assert content_id(test) not in (key, edited)


def test_pixel_auroc_on_hand_made_maps():
    masks = torch.zeros(2, 1, 4, 4)
    masks[1, 0, :2, :2] = 1  # 4 defect pixels out of 32
    perfect = masks[:, 0] * 5.0 + 0.1
    assert metrics.pixel_auroc(masks, perfect) == 1.0
    assert metrics.pixel_auroc(masks, -perfect) == 0.0
    # one defect pixel scored below 2 of the 28 normal pixels, the others above all:
    maps = 3.0 * masks[:, 0]
    maps[0, 0, :2] = 2.0
    maps[1, 0, 0] = 1.5
    # pairs (defect, normal) ranked correctly: 3 defects x 28 + 1 defect x 26 of 4 x 28
    assert metrics.pixel_auroc(masks, maps) == pytest.approx((3 * 28 + 26) / (4 * 28))
    constant = torch.ones(2, 4, 4)
    assert metrics.pixel_auroc(masks, constant) == 0.5
    with pytest.raises(ValueError, match="binary"):
        metrics.pixel_auroc(masks * 0.5, perfect)
    with pytest.raises(ValueError, match="non-finite"):
        metrics.pixel_auroc(masks, perfect * float("nan"))
    with pytest.raises(ValueError, match="differ in size"):
        metrics.pixel_auroc(masks, perfect[:, :2])
