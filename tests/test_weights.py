"""ImageNet weights from a local folder ($USFKIT_WEIGHTS): checksums verified, clear errors.
Everything is constructed here (small random checkpoints); nothing is downloaded."""
import hashlib
import os

import pytest
import torch

from usfkit.image import backbones
from usfkit.image.backbones import (WeightsError, build_backbone, timm_weights_file, torchvision_weights_file,
                                    verify_hf_blob, verify_torch_checkpoint)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tiny_checkpoint(folder, name="tiny"):
    torch.manual_seed(0)
    tmp = folder / "tmp.pth"
    torch.save({"w": torch.randn(4, 3), "b": torch.zeros(4)}, tmp)
    return tmp, _sha(tmp)


def test_torch_checkpoint_hash_prefix(tmp_path):
    tmp, digest = _tiny_checkpoint(tmp_path)
    good = tmp.rename(tmp_path / f"tiny-{digest[:8]}.pth")
    assert verify_torch_checkpoint(good) == good
    bad = tmp_path / f"tiny-{'0' if digest[0] != '0' else '1'}{digest[1:8]}.pth"
    bad.write_bytes(good.read_bytes())
    with pytest.raises(WeightsError, match=bad.name):
        verify_torch_checkpoint(bad)
    plain = tmp_path / "tiny.pth"
    plain.write_bytes(good.read_bytes())
    with pytest.raises(WeightsError, match="no checksum"):
        verify_torch_checkpoint(plain)


def test_missing_torchvision_file_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv(backbones.WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(WeightsError, match="resnet18-f37072fd.pth is missing"):
        torchvision_weights_file("resnet18", tmp_path)
    with pytest.raises(WeightsError, match="resnet18-f37072fd.pth"):  # pretrained="auto" does not fall back
        build_backbone("resnet18", ("layer1",), 64, pretrained="auto")


def test_wrong_torchvision_checkpoint_is_refused(tmp_path, monkeypatch):
    torch.manual_seed(0)
    import torchvision
    (tmp_path / "checkpoints").mkdir()
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    monkeypatch.setenv(backbones.WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(WeightsError, match="not f37072fd"):
        build_backbone("resnet18", ("layer1",), 64, pretrained=True)
    # pretrained=False never reads the folder
    assert not build_backbone("resnet18", ("layer1",), 64, pretrained=False).pretrained_loaded


def test_weights_dir_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv(backbones.WEIGHTS_ENV, str(tmp_path / "nope"))
    with pytest.raises(WeightsError, match="not a folder"):
        backbones.weights_dir()


def _hf_cache(folder, name, state):
    """A Hugging Face hub cache of timm model ``name`` holding ``state`` as model.safetensors."""
    from safetensors.torch import save_file
    from timm.models import get_pretrained_cfg
    repo = folder / f"models--{get_pretrained_cfg(name).hf_hub_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    tmp = repo / "tmp"
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    blob = repo / "blobs" / _sha(tmp)
    tmp.rename(blob)
    rev = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    os.symlink(os.path.relpath(blob, snap), snap / "model.safetensors")
    return blob


def test_timm_weights_from_hub_cache(tmp_path, monkeypatch):
    import timm
    torch.manual_seed(0)
    names = ("cait_xxs24_224", "cait_xxs36_224")  # a small MS-CaiT on 64 px images (checkpoints at those sizes)
    refs = [timm.create_model(n, pretrained=False, img_size=s) for n, s in zip(names, (64, 32))]
    _hf_cache(tmp_path / "hub", names[0], refs[0].state_dict())
    blob = _hf_cache(tmp_path, names[1], refs[1].state_dict())  # directly in the folder, or under hub/
    monkeypatch.setenv(backbones.WEIGHTS_ENV, str(tmp_path))
    assert verify_hf_blob(timm_weights_file(names[1], tmp_path)) == blob.resolve()
    bb = backbones.MultiScaleCait(names, 64, pretrained=True)
    assert bb.pretrained_loaded
    for net, ref in zip(bb.models, refs):
        torch.testing.assert_close(net.patch_embed.proj.weight, ref.patch_embed.proj.weight)
    # a damaged blob is refused, naming it
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    backbones._VERIFIED.clear()
    with pytest.raises(WeightsError, match=blob.name[:16]):
        backbones.MultiScaleCait(names, 64, pretrained="auto")


def test_missing_timm_cache_names_repo(tmp_path):
    with pytest.raises(WeightsError, match="cait_m48_448.fb_dist_in1k"):
        timm_weights_file("cait_m48_448", tmp_path)


def test_copied_file_without_link_cannot_be_checked(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(WeightsError, match="not a link"):
        verify_hf_blob(f)
