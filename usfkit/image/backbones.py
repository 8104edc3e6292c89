"""Frozen ImageNet feature extractors of the three image methods (paper §5.2.1, App. E).

* FastFlow: torchvision ResNet-18, layers 1-3 (strides 4, 8, 16);
* CFlow: torchvision Wide-ResNet-50-2, layers 2-4 (strides 8, 16, 32);
* U-Flow: MS-CaiT -- two timm CaiT models, ``cait_m48_448`` on the image and
  ``cait_s24_224`` on the image at half resolution (strides 16 and 32), each read
  out after its 41st / 21st block and its final norm, as in anomalib's U-Flow.

Images are expected ImageNet-normalised (``usfkit.data`` does it).  Weights come
from the libraries' own APIs.  ``pretrained="auto"`` tries them and falls back to
random weights with a loud warning (this machine has no internet); ``True`` raises
if they cannot be had; ``False`` never tries.  The backbone is frozen: eval mode,
no gradients, forward under ``no_grad``.

Weights from a local folder (clusters without internet): set ``$USFKIT_WEIGHTS`` to a folder
(``usf-images --weights DIR`` sets it, and Ray workers inherit it) holding

* torchvision's checkpoints under their published names, e.g. ``resnet18-f37072fd.pth`` and
  ``wide_resnet50_2-9ba9bcbe.pth`` (directly in the folder or in ``checkpoints/`` or
  ``hub/checkpoints/``, i.e. a copy of ``~/.cache/torch``).  The hex digits in the name are the
  first digits of the file's SHA-256, checked here as ``torch.hub`` checks them on download;
* timm's weights as a Hugging Face hub cache folder, e.g. ``models--timm--cait_m48_448.fb_dist_in1k/``
  (directly in the folder or in ``hub/``, i.e. a copy of ``~/.cache/huggingface``).  Its files
  are links to ``blobs/<SHA-256 of the file>``, checked here.

Fill it on any machine with internet (``python -c "import usfkit.image.backbones as b;
print(*b.required_weights(), sep='\\n')"`` lists what is needed; building each backbone once with
``pretrained=True`` downloads it into those caches) and copy it over.  With ``$USFKIT_WEIGHTS``
set, every backbone built with ``pretrained`` ``True`` or ``"auto"`` loads from it, and a missing
file or a wrong checksum is an error (:class:`WeightsError`) naming the file, never a silent
fall-back to random weights.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import socket
import sys
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["RESNETS", "CAIT_BLOCKS", "MS_CAIT", "PretrainedUnavailable", "WeightsError", "WEIGHTS_ENV",
           "weights_dir", "sha256", "verify_torch_checkpoint", "verify_hf_blob", "torchvision_weights_file",
           "timm_weights_file", "required_weights", "Backbone", "ResNetBackbone", "MultiScaleCait",
           "build_backbone"]

RESNETS = {  # name -> (channels per layer1..layer4, stride per layer1..layer4)
    "resnet18": ((64, 128, 256, 512), (4, 8, 16, 32)),
    "wide_resnet50_2": ((256, 512, 1024, 2048), (4, 8, 16, 32)),
}
CAIT_BLOCKS = {"cait_m48_448": 41, "cait_s24_224": 21}  # blocks used (anomalib / FastFlow paper Table 6)
MS_CAIT = ("cait_m48_448", "cait_s24_224")


class PretrainedUnavailable(RuntimeError):
    """The library's ImageNet weights could not be obtained."""


class WeightsError(PretrainedUnavailable):
    """A weights file in ``$USFKIT_WEIGHTS`` is missing or does not match its checksum."""


WEIGHTS_ENV = "USFKIT_WEIGHTS"


def weights_dir() -> Path | None:
    """The local weights folder named by ``$USFKIT_WEIGHTS`` (``None`` when unset)."""
    env = os.environ.get(WEIGHTS_ENV)
    if not env:
        return None
    folder = Path(env).expanduser()
    if not folder.is_dir():
        raise WeightsError(f"${WEIGHTS_ENV} names {folder}, which is not a folder: point it (or --weights) at the "
                           "folder holding the ImageNet weights, or unset it")
    return folder


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


_VERIFIED: dict[tuple, str] = {}  # (path, size, mtime) -> digest, so a sweep hashes each file once per process


def _digest(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256(path)
    return _VERIFIED[key]


def verify_torch_checkpoint(path: Path) -> Path:
    """Check a torchvision checkpoint against the SHA-256 prefix in its name (``name-<hex>.pth``),
    as ``torch.hub`` does after a download; returns ``path``."""
    path = Path(path)
    match = re.search(r"-([a-f0-9]+)\.", path.name)  # torch.hub.HASH_REGEX
    if not match:
        raise WeightsError(f"{path}: the name carries no checksum (expected <name>-<first hex digits of its "
                           "SHA-256>.pth, as torchvision publishes it): keep the published file name")
    digest = _digest(path)
    if not digest.startswith(match.group(1)):
        raise WeightsError(f"{path}: its SHA-256 starts {digest[:len(match.group(1))]}, not {match.group(1)} as its "
                           "name says: the file is damaged or not the published one; download it again")
    return path


def verify_hf_blob(path: Path) -> Path:
    """Check a file of a Hugging Face hub cache: it must link to ``blobs/<SHA-256 of its content>``
    (large files; small ones are named by their git blob hash, checked likewise); returns the blob."""
    path = Path(path)
    blob = path.resolve()
    name = blob.name
    if blob.parent.name != "blobs" or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", name):
        raise WeightsError(f"{path} is not a link into a hub cache's blobs/ folder, so its checksum cannot be checked: "
                           "copy the cache folder with its links (cp -a, rsync -a), not the files alone")
    if len(name) == 64:
        digest = _digest(blob)
    else:  # git's blob hash: sha1 of "blob <size>\0" + content
        h = hashlib.sha1(f"blob {blob.stat().st_size}\0".encode())
        h.update(blob.read_bytes())
        digest = h.hexdigest()
    if digest != name:
        raise WeightsError(f"{blob} (for {path}): its checksum is {digest[:16]}..., not the {name[:16]}... it is "
                           "named by: the file is damaged; download it again")
    return blob


def _first(folder: Path, subfolders, name: str) -> Path | None:
    for sub in subfolders:
        if (folder / sub / name).exists():
            return folder / sub / name
    return None


def torchvision_weights_file(name: str, folder: Path) -> Path:
    """The verified torchvision checkpoint of ``name``'s default ImageNet weights in ``folder``."""
    import torchvision
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    file = url.rsplit("/", 1)[-1]
    path = _first(folder, (".", "checkpoints", "hub/checkpoints"), file)
    if path is None:
        raise WeightsError(f"{folder / file} is missing (torchvision's ImageNet weights of {name}; also looked in "
                           f"checkpoints/ and hub/checkpoints/): download {url} and put it there, or unset "
                           f"${WEIGHTS_ENV}")
    return verify_torch_checkpoint(path)


def timm_weights_file(name: str, folder: Path) -> Path:
    """The verified weights of timm model ``name`` in the Hugging Face hub cache ``folder``."""
    from huggingface_hub import try_to_load_from_cache
    from timm.models import get_pretrained_cfg
    repo = get_pretrained_cfg(name).hf_hub_id
    cache = Path(folder) / f"models--{repo.replace('/', '--')}"
    for sub in (".", "hub"):
        for file in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(repo, file, cache_dir=Path(folder) / sub)
            if isinstance(found, str):
                verify_hf_blob(Path(found))
                return Path(found)
    raise WeightsError(f"{cache} has no model.safetensors of {repo} (timm's ImageNet weights of {name}; also looked "
                       f"under hub/): copy it from ~/.cache/huggingface/hub of a machine where timm downloaded it "
                       f"(timm.create_model({name!r}, pretrained=True)), or unset ${WEIGHTS_ENV}")


def required_weights() -> list[str]:
    """The files ``$USFKIT_WEIGHTS`` must hold for the paper's three backbones."""
    import torchvision
    from timm.models import get_pretrained_cfg
    files = [torchvision.models.get_model_weights(n).DEFAULT.url.rsplit("/", 1)[-1] for n in RESNETS]
    return files + [f"models--{get_pretrained_cfg(n).hf_hub_id.replace('/', '--')}/ (Hugging Face hub cache)"
                    for n in MS_CAIT]


def _host_reachable(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hf_offline_if_unreachable():
    """timm downloads from the Hugging Face hub, which retries for ~45 s when offline;
    without a network we go straight to its local cache instead."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover
        yield
        return
    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = old or not _host_reachable("huggingface.co")
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


_FAILED: dict[str, str] = {}  # backbone name -> why its ImageNet weights could not be loaded in this process


def _load(name: str, pretrained, build_pretrained, build_random) -> tuple[nn.Module, bool]:
    """Build with the library's ImageNet weights when asked and possible.  ``"auto"`` tries once per
    backbone and process: after a failure it builds random weights without another download attempt
    or another warning (a sweep builds the same backbone for every run)."""
    if pretrained not in (True, False, "auto"):
        raise ValueError(f"pretrained must be True, False or 'auto', got {pretrained!r}")
    if pretrained is False or (pretrained == "auto" and name in _FAILED):
        return build_random(), False
    try:
        # held back: offline, the libraries' "Downloading: <url>" line only precedes their failure (the warning
        # below says it); after a download that worked, what they said is written out
        out, err_out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err_out):
            net = build_pretrained()
        sys.stdout.write(out.getvalue())
        sys.stderr.write(err_out.getvalue())
        return net, True
    except Exception as err:  # no internet, no cache, ...
        msg = (f"could not load the ImageNet weights of {name} ({type(err).__name__}: {str(err)[:200]}). "
               "Connect to the internet once so that torchvision/timm cache them "
               "(~/.cache/torch/hub, ~/.cache/huggingface), or pass pretrained=False for random weights.")
        if pretrained is True:
            raise PretrainedUnavailable(msg) from err
        _FAILED[name] = msg
        warnings.warn(f"RANDOM BACKBONE WEIGHTS: {msg} Using random weights instead; "
                      "anomaly-detection results will be far below the paper's.", stacklevel=3)
        return build_random(), False


class Backbone(nn.Module):
    """Base class: a frozen module mapping images ``[B, 3, H, W]`` to a list of per-scale
    feature maps ``[B, C_k, H / s_k, W / s_k]``."""

    name: str = ""
    pretrained_loaded: bool = False
    channels: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()

    def freeze(self) -> "Backbone":
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "Backbone":
        return super().train(False)  # always in eval mode (frozen batch-norm statistics)

    def feature_shapes(self, image_size: int | tuple[int, int]) -> list[tuple[int, int, int]]:
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        return [(c, h // s, w // s) for c, s in zip(self.channels, self.strides)]

    def describe(self) -> str:
        weights = "ImageNet weights" if self.pretrained_loaded else \
            "RANDOM weights (ImageNet weights not loaded: results are not comparable to the paper)"
        return f"{self.name}: frozen, {weights}; features {list(zip(self.channels, self.strides))} (channels, stride)"

    def forward(self, images: Tensor) -> list[Tensor]:
        with torch.no_grad():
            return self.extract(images)

    def extract(self, images: Tensor) -> list[Tensor]:
        raise NotImplementedError


class ResNetBackbone(Backbone):
    """A torchvision ResNet read out after the given residual stages."""

    def __init__(self, name: str = "resnet18", layers=("layer1", "layer2", "layer3"), pretrained="auto"):
        super().__init__()
        import torchvision
        if name not in RESNETS:
            raise ValueError(f"ResNet backbone must be one of {sorted(RESNETS)}, got {name!r}")
        bad = [layer for layer in layers if layer not in ("layer1", "layer2", "layer3", "layer4")]
        if bad or not layers:
            raise ValueError(f"layers must be among layer1..layer4, got {layers!r}")
        folder = weights_dir() if pretrained is not False else None
        if folder is not None:  # local weights: verified, and an error when missing
            net = torchvision.models.get_model(name, weights=None)
            net.load_state_dict(torch.load(torchvision_weights_file(name, folder), weights_only=True))
            self.pretrained_loaded = True
        else:
            net, self.pretrained_loaded = _load(
                name, pretrained,
                lambda: torchvision.models.get_model(name, weights="DEFAULT"),
                lambda: torchvision.models.get_model(name, weights=None))
        self.name, self.layers = name, tuple(layers)
        idx = [int(layer[-1]) - 1 for layer in self.layers]
        self.channels = tuple(RESNETS[name][0][i] for i in idx)
        self.strides = tuple(RESNETS[name][1][i] for i in idx)
        last = max(idx) + 1
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stages = nn.ModuleDict({f"layer{i}": getattr(net, f"layer{i}") for i in range(1, last + 1)})
        self.freeze()

    def extract(self, images: Tensor) -> list[Tensor]:
        x, out = self.stem(images), []
        for name, stage in self.stages.items():
            x = stage(x)
            if name in self.layers:
                out.append(x)
        return out


class MultiScaleCait(Backbone):
    """MS-CaiT of U-Flow: ``models[0]`` on the image, ``models[1]`` on the image resized
    (bicubic) to half its size; tokens after the first ``CAIT_BLOCKS[name]`` blocks
    (default: all but 3) and the model's final norm, reshaped to maps (stride 16 and 32)."""

    def __init__(self, models: tuple[str, str] = MS_CAIT, image_size: int | tuple[int, int] = 448,
                 pretrained="auto"):
        super().__init__()
        import timm
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if h % 32 or w % 32:
            raise ValueError(f"MS-CaiT needs an image size divisible by 32, got {(h, w)}")
        self.image_size = (h, w)
        nets, loaded = [], []
        folder = weights_dir() if pretrained is not False else None
        for name, size in zip(models, [(h, w), (h // 2, w // 2)]):
            if folder is not None:  # local weights: verified, and an error when missing
                file = timm_weights_file(name, folder)
                nets.append(timm.create_model(name, pretrained=True, img_size=size,
                                              pretrained_cfg_overlay=dict(file=str(file))))
                loaded.append(True)
                continue
            with _hf_offline_if_unreachable():
                net, ok = _load(name, pretrained,
                                lambda: timm.create_model(name, pretrained=True, img_size=size),
                                lambda: timm.create_model(name, pretrained=False, img_size=size))
            nets.append(net)
            loaded.append(ok)
        self.models = nn.ModuleList(nets)
        self.blocks = tuple(CAIT_BLOCKS.get(n, len(net.blocks) - 3) for n, net in zip(models, nets))
        self.name = "mcait" if tuple(models) == MS_CAIT else "mcait(" + ",".join(models) + ")"
        self.pretrained_loaded = all(loaded)
        self.channels = tuple(net.embed_dim for net in nets)
        self.strides = (16, 32)
        self.freeze()

    def extract(self, images: Tensor) -> list[Tensor]:
        half = F.interpolate(images, size=(images.shape[-2] // 2, images.shape[-1] // 2),
                             mode="bicubic", align_corners=True)
        out = []
        for net, n_blocks, x in zip(self.models, self.blocks, [images, half]):
            h, w = x.shape[-2] // 16, x.shape[-1] // 16
            tokens = net.pos_drop(net.patch_embed(x) + net.pos_embed)
            for block in net.blocks[:n_blocks]:
                tokens = block(tokens)
            tokens = net.norm(tokens)
            out.append(tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w))
        return out


def build_backbone(name: str, layers=None, image_size: int | tuple[int, int] = 256,
                   pretrained="auto") -> Backbone:
    """``"resnet18"`` / ``"wide_resnet50_2"`` (with ``layers``), ``"mcait"`` (U-Flow's
    ``cait_m48_448`` + ``cait_s24_224``), or a timm CaiT name such as ``"cait_xxs24_224"``
    (that model at both resolutions: a small MS-CaiT for quick runs)."""
    if name in RESNETS:
        return ResNetBackbone(name, layers or ("layer1", "layer2", "layer3"), pretrained)
    if name == "mcait":
        return MultiScaleCait(MS_CAIT, image_size, pretrained)
    if name.startswith("cait_"):
        return MultiScaleCait((name, name), image_size, pretrained)
    raise ValueError(f"unknown backbone {name!r}: use 'resnet18', 'wide_resnet50_2', 'mcait' "
                     "or a timm CaiT name such as 'cait_xxs24_224'")
