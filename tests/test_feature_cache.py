"""The feature cache under concurrent writers (several processes or threads computing the same key)."""
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from usfkit.image import features

BOTTLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mvtec_ad_256"
needs_bottle = pytest.mark.skipif(not (BOTTLE / "bottle").is_dir(), reason="real MVTec AD bottle class not present")

WRITER = """
import sys, torch
from torch import nn
from usfkit.data import MVTecAD
from usfkit.image import features
torch.set_num_threads(1)

class Tiny(nn.Module):
    name, pretrained_loaded = "tiny", False
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 4, stride=4)
        self.requires_grad_(False)
    @torch.no_grad()
    def forward(self, x):
        return [torch.tanh(self.conv(x))]

torch.manual_seed(0)
bb = Tiny()
images = MVTecAD("bottle", "test", 32, root=sys.argv[1])
fs = features.cached_features(bb, images, dataset="mvtec", cls="bottle", split="test", image_size=32,
                              folder=sys.argv[2])
print(fs.info["key"], fs.info["from_cache"])
"""


@needs_bottle
def test_two_processes_write_the_same_key(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(BOTTLE), str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    keys = {out.split()[0] for out, _ in outs}
    assert len(keys) == 1
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"{keys.pop()}.pt"], f"one complete file, no temporary left: {files}"
    blob = torch.load(tmp_path / files[0], weights_only=False)
    assert blob["features"][0].shape[1:] == (4, 8, 8) and len(blob["labels"]) == 83


def test_save_atomic_threads_and_reader(tmp_path):
    path = tmp_path / "key.pt"
    torch.manual_seed(0)
    payloads = [torch.full((256, 1024), float(i)) for i in range(2)]
    errors = []

    def write(i):
        try:
            for _ in range(6):
                features.save_atomic({"x": payloads[i]}, path)
        except Exception as err:  # pragma: no cover - the assertion below reports it
            errors.append(err)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    seen = 0
    while any(t.is_alive() for t in threads):
        if path.exists():  # a reader never sees a partial file
            x = torch.load(path)["x"]
            assert x.shape == (256, 1024) and x.min() == x.max()
            seen += 1
    for t in threads:
        t.join()
    assert not errors
    assert [p.name for p in tmp_path.iterdir()] == ["key.pt"]
    assert torch.load(path)["x"][0, 0].item() in (0.0, 1.0)


@needs_bottle
def test_unreadable_cache_file_is_recomputed(tmp_path):
    from usfkit.data import MVTecAD

    class Tiny(torch.nn.Module):
        name, pretrained_loaded = "tiny", False

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 8, stride=8)
            self.requires_grad_(False)

        @torch.no_grad()
        def forward(self, x):
            return [self.conv(x)]

    torch.manual_seed(0)
    bb, images = Tiny(), MVTecAD("bottle", "test", 32, root=BOTTLE)
    kw = dict(dataset="mvtec", cls="bottle", split="test", image_size=32, folder=tmp_path)
    first = features.cached_features(bb, images, **kw)
    file = tmp_path / f"{first.info['key']}.pt"
    file.write_bytes(file.read_bytes()[:100])  # cut short
    again = features.cached_features(bb, images, **kw)
    assert not again.info["from_cache"]
    assert torch.equal(again.features[0], first.features[0])
    assert features.cached_features(bb, images, **kw).info["from_cache"]
