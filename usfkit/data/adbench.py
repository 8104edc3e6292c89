"""ADBench's 47 classical tabular datasets (Han et al., NeurIPS 2022), the data of §5.1.

Each dataset is one ``.npz`` with ``X`` (features) and ``y`` (1 = anomaly), as ADBench
publishes it in ``adbench/datasets/Classical/``.  :data:`SHA256` lists every file with
its checksum; :func:`load` finds a file under ``data_dir()/adbench_classical``, and
when it is missing downloads it from ADBench's repository (verifying the checksum
with pooch) or, offline, says which file to put where.  :func:`split` applies the
paper's protocol (§5.1.1: a 70/30 train/test split, anomalies removed from the training
set) the way ADBench's own data generator does it (see :func:`adbench_rows`), with or
without its resampling of small datasets.
:func:`read_npz` reads and checks any file in ADBench's format (chapter 06's ResNet-18
embeddings too): a bad file raises :class:`~usfkit.data.checks.DataError` naming it.
"""
from __future__ import annotations

import difflib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import data_dir
from ..profiles import ADBENCH_PROTOCOLS
from .checks import DataError, validate_xy

__all__ = ["FOLDER", "URL", "SHA256", "NAMES", "resolve_name", "folder", "available", "missing", "path", "read_npz",
           "load", "PROTOCOLS", "MIN_ROWS", "adbench_rows", "MIN_TRAIN_NORMALS", "check_sizes", "Split", "split"]

FOLDER = "adbench_classical"
URL = "https://github.com/Minqi824/ADBench/raw/main/adbench/datasets/Classical/{name}.npz"

#: sha256 of every ADBench classical ``.npz`` (computed from the files ADBench publishes).
#: ``None``: we had no copy to hash (the four largest files); a download of those is
#: used unverified and the loader says so.
SHA256: dict[str, str | None] = {
    "1_ALOI": "792d0b5bd1147bfc9574a1974f157b39fbd4cbed8ecd04cf983fd554498ed477",
    "2_annthyroid": "e738f7c58a8740d2c4aac4c71ff49ce5e1d1aa16f44178135fc9c09df05fad1b",
    "3_backdoor": None,
    "4_breastw": "4f37ce07dbc25ddad8178fdc6d664ab46d2d0000ee28c2787c3c7ff3c03ef9f6",
    "5_campaign": "74dd4d0072d6c6f1aabab63bc102f9633454f32bb936fa9bcfbd38f9f2386bcd",
    "6_cardio": "bc5009bde6930b4d298b594f31b34485a9a17210cff0e8fb00a8c3068b885a2d",
    "7_Cardiotocography": "5ae84910430f05923e11b6f537243263977c9136949dabd891e3570aeec51e29",
    "8_celeba": "1cadfdea14cd8d240eca715a70c09c88af8621d086a7478c63f602d97adef0b5",
    "9_census": None,
    "10_cover": "945a097c3542ae81a551bf1c06dcad78a755d94f84fcaf1d60687e42d1a656df",
    "11_donors": "5824ec854465f2763b4bfe3da1ae9f25ed5433b5c6e265d42e37da4f82a58679",
    "12_fault": "ec27301f9a4cf7c5d8b22c360cf37ddb043b7fb062465723dfd8b34e2771e5dd",
    "13_fraud": None,
    "14_glass": "aa7a8db1d475ba01a10488af454bc15220a3d5951b010b03b7020567d8152cdc",
    "15_Hepatitis": "4a87a2f7d8013e5bfde63294fae61ec7a612322de72f338a7f9491749025ad98",
    "16_http": "9d98710091551587f4740cfc851a6b064fff6319a337c2dc77ee6da4bcc2e02c",
    "17_InternetAds": "bdd8ad5cf5bf2cb96cba53dde30d522d0f6a279083a8e2bc7efbac5981b04385",
    "18_Ionosphere": "bca46cb0cfd1bf9ddef6cde5ad2215d54fb0189508d0d4c4eb98e788cad69001",
    "19_landsat": "ba17e2158c07469597b89db49d3982c874c6b713ff6670721ddc88969da77987",
    "20_letter": "f986d3da80cf1fa2aea83a5ebe73b7d4800e0d4c01fdd1ae074b58d20f10d039",
    "21_Lymphography": "dad977b04f4ea65b78ccd0e9f76b45175bad605165b37e63f3cc177845e67037",
    "22_magic.gamma": "0be375984d7af9ea7a63b12206c240840d8b7daa3607021c5fb8756407dd86f1",
    "23_mammography": "a0308ac9712d78321073b1c2dc98dc37665c0f35c1cc33019416fe8f8d7de7ea",
    "24_mnist": "be7706272325fdd3592c1be555ae1a82f916a2f8545f4f8cbaa548ab102cc44c",
    "25_musk": "2ed3f4392197b76a1e59116ff880c7720a4b026cf4842073a53b56fdea265017",
    "26_optdigits": "60de17a375a278ba220a7849727d998aa02b5e2f9fd17732a004bba28de4656e",
    "27_PageBlocks": "10a9b4d5bb5d3b9083caab4c4062f665610eada703c3d927bf7c34b1f2d0d223",
    "28_pendigits": "c4936b89dcdad59d303020e492f763a0f54170080d787c77497609acbb9c2d79",
    "29_Pima": "215454bb263a2f040945c9ea7bd7f06f1e89a61a3143bdb6f196e3887e801a7d",
    "30_satellite": "1f048f5686f1b8c16a227fdfa3c81a62cd9a92715714a6b24c69b1c5ad96b46e",
    "31_satimage-2": "1b056e357f801b8b20c3f380a30224a3c4088d7ed764ec5a24828dc9b1918d6f",
    "32_shuttle": "26900b0f6be45d9ddb7a402c9b2f956ceda42d23a8ca4cf4406b8bc1352823d1",
    "33_skin": "d02aa01ffc1b6bf2b8b1ac250c90e8a8eacd0cefc962940ed5cc4bf5deac9c95",
    "34_smtp": "d2569fc9bc12115419e3f5b37d19921e10e6c26e5ad1e61064cfb0fbc402dfdd",
    "35_SpamBase": "d0c46c7928e43f6496bcd06e09de0b70f6bc8143792dfa0a43f450263d254e9b",
    "36_speech": None,
    "37_Stamps": "99fe739447284f613fa54bf2dccdb51c5120175ce6260adec6dad77576c42509",
    "38_thyroid": "8de161b3f235b7647bb0b39a836d983ff61d67bf234edac461da2d71e889cb87",
    "39_vertebral": "0816286f92b96fe6867664a41a031ac7228dcfbf1a5feefe50ca3883b2e9073d",
    "40_vowels": "4bfc4244d1c882773bbbc50d4a5db5e52276e53506e46b2d45e02d074cfcb1b6",
    "41_Waveform": "6c9d867337ad1a2f8372c1d27f4c032f0401237e2041b7c45f00de8d319ff30f",
    "42_WBC": "650f9dcb129248f67a291be0974f533ef259fcbde50fce5c8ad2a1cb2652d03b",
    "43_WDBC": "78d4606a1ab516f5b60b00c196497f3bbd6bd5e4548fd04cf5f2475209b34b85",
    "44_Wilt": "c70b72aa611ec87b20efb400943ef3ce4f8bf7aa58fcef825fbd28cc5cee3cc9",
    "45_wine": "d5ad8965d92cc57122fe1e6572bb301adbaf795b3e166d187ae00a704d8f6e20",
    "46_WPBC": "68a6d67242643855713bcdad07d89ecc472bd00000dccc17ba87916eb2693d19",
    "47_yeast": "bbb15c873d78a4f6a589f46d0f75814595e2282d2ae7ce7779c750f276c3770d",
}
NAMES = list(SHA256)


def resolve_name(name: str | int) -> str:
    """``"4_breastw"``, ``"breastw"`` (any case) or ``4`` -> ``"4_breastw"``."""
    for full in NAMES:
        number, short = full.split("_", 1)
        if str(name) in (full, number) or str(name).lower() == short.lower():
            return full
    close = difflib.get_close_matches(str(name), NAMES + [n.split("_", 1)[1] for n in NAMES], n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise KeyError(f"{name!r} is not an ADBench classical dataset.{hint} Known: {', '.join(NAMES)}")


def folder(root: Path | None = None) -> Path:
    return Path(root) if root is not None else data_dir() / FOLDER


def available(root: Path | None = None) -> list[str]:
    """The datasets whose file is present under ``folder(root)``, in ADBench's order."""
    return [n for n in NAMES if (folder(root) / f"{n}.npz").exists()]


def missing(root: Path | None = None) -> list[str]:
    return [n for n in NAMES if n not in available(root)]


def path(name: str | int, root: Path | None = None, download: bool = True) -> Path:
    """The local file of dataset ``name``, downloaded (and checksum-verified) when missing."""
    name = resolve_name(name)
    where = folder(root)
    file = where / f"{name}.npz"
    if file.exists():
        return file
    help_text = (f"ADBench dataset {name} is not in {where}. Download {URL.format(name=name)} and put it "
                 f"there as {name}.npz, or point $USFKIT_DATA at a folder that holds {FOLDER}/{name}.npz.")
    if not download:
        raise FileNotFoundError(help_text)
    import pooch

    try:
        got = pooch.retrieve(URL.format(name=name), known_hash=SHA256[name], fname=f"{name}.npz",
                             path=where, progressbar=True)
    except Exception as err:  # offline, HTTP error or checksum mismatch: say what to do
        raise FileNotFoundError(f"{help_text} (Download failed: {type(err).__name__}: {err})") from err
    return Path(got)


def read_npz(file: str | Path, need_both_classes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(X float32 [n, d], y int64 [n])`` of an ADBench-format ``.npz`` (arrays ``X`` and ``y``,
    1 = anomaly), checked by :func:`~usfkit.data.checks.validate_xy`: a bad file raises
    :class:`~usfkit.data.checks.DataError` naming the file and the rows at fault."""
    try:
        with np.load(file, allow_pickle=False) as archive:
            absent = [k for k in ("X", "y") if k not in archive.files]
            x, y = (None, None) if absent else (archive["X"], archive["y"])
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as err:  # empty, truncated, not .npz
        size = Path(file).stat().st_size if Path(file).is_file() else None
        what = "is empty (0 bytes)" if size == 0 else "is not a readable .npz archive of numeric arrays X and y"
        raise DataError(f"{file}: {what} ({type(err).__name__}: {err}); delete it and download it again "
                        "(usfkit.data.adbench.path(name) does it when online)") from err
    if absent:
        raise DataError(f"{file}: has no array {' or '.join(absent)} (it holds {', '.join(archive.files) or 'none'}); "
                        "ADBench's format is X [n, d] (features) and y [n] (1 = anomaly)")
    return validate_xy(x, y, str(file), need_both_classes)


def load(name: str | int, root: Path | None = None, download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(X float32 [n, d], y int64 [n])`` of dataset ``name``, with both classes present."""
    return read_npz(path(name, root, download))


#: ``"adbench"``: ADBench's generator exactly (the closest match to the paper, which used ADBench's
#: datasets); ``"adbench-noresample"``: the same without resampling small datasets up to 1000 rows, which
#: copies test normals into the training set (a leak; see :func:`adbench_rows`).
PROTOCOLS = ADBENCH_PROTOCOLS


#: ADBench's ``n_samples_threshold``: its generator resamples a dataset with fewer rows up to this many.
MIN_ROWS = 1000


def adbench_rows(y: np.ndarray, seed: int, resample: bool = True, test_size: float = 0.3,
                 min_rows: int = MIN_ROWS, max_rows: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)`` into the original file, as ADBench's ``DataGenerator.generator``
    draws them for ``seed`` with its defaults (``test_size=0.3, generate_duplicates=True,
    n_samples_threshold=1000``):

    1. a dataset with fewer than ``min_rows`` rows is resampled *with replacement* to ``min_rows``
       rows (``resample=False`` skips this step);
    2. one with more than ``max_rows`` rows is subsampled to ``max_rows`` without replacement;
    3. a stratified split with ``test_size``.

    ADBench seeds NumPy's global generator before step 1, reseeds it before each of steps 1
    and 2, and lets ``train_test_split`` draw from it; a ``RandomState(seed)`` that is re-created
    at the same places and handed to the split draws the same rows (``tests/test_tabular.py``
    checks this against a transcription of ADBench's calls).  Resampling puts copies of the same
    row on both sides of the split: most test normals of a small dataset then have a copy among the
    training normals.
    """
    from sklearn.model_selection import train_test_split  # here: a command's --status needs no scikit-learn

    rng = np.random.RandomState(seed)
    rows = np.arange(len(y))
    if resample and len(rows) < min_rows:
        rng = np.random.RandomState(seed)
        rows = rows[rng.choice(len(rows), min_rows, replace=True)]
    if len(rows) > max_rows:
        rng = np.random.RandomState(seed)
        rows = rows[rng.choice(len(rows), max_rows, replace=False)]
    train, test = train_test_split(rows, test_size=test_size, shuffle=True, stratify=y[rows], random_state=rng)
    return train, test


#: The fewest distinct normal rows a training part may hold.  The one-class baselines read the training
#: normals' ``nu = 0.05`` quantiles (OneFlow's ball, DOHSC's radius, DO2HSC's shell): with fewer than
#: ``1 / nu = 20`` rows such a quantile is an interpolation between the most extreme rows and no row lies
#: beyond it.  (No validation part is needed: §5.1.1 stops early on the training loss.)
MIN_TRAIN_NORMALS = 20


def check_sizes(file: Path | str, y: np.ndarray, seed: int) -> None:
    """A :class:`~usfkit.data.checks.DataError` unless, under both :data:`PROTOCOLS` (the rows
    :func:`adbench_rows` draws for ``seed``), the training part holds at least :data:`MIN_TRAIN_NORMALS`
    distinct normal rows of the file and the test part at least one distinct normal and one distinct
    anomalous row (an AUROC compares the two).
    Distinct rows: ADBench's resampling of small files copies rows, and copies are not more data.  Every
    ADBench classical file passes (the smallest, 15_Hepatitis, keeps about 47 training normals); a file with
    2 normal and 2 anomalous rows, which would otherwise train on one normal row, is refused."""
    counts = np.bincount(y, minlength=2)
    for protocol in PROTOCOLS:
        train, test = adbench_rows(y, seed, resample=protocol == "adbench")
        sizes = {"distinct training normals": len(np.unique(train[y[train] == 0])),
                 "distinct test normals": len(np.unique(test[y[test] == 0])),
                 "distinct test anomalies": len(np.unique(test[y[test] == 1]))}
        need = {"distinct training normals": MIN_TRAIN_NORMALS, "distinct test normals": 1,
                "distinct test anomalies": 1}
        short = [k for k in sizes if sizes[k] < need[k]]
        if short:
            got = ", ".join(f"{sizes[k]} {k} (at least {need[k]} needed)" for k in short)
            raise DataError(f"{file}: too small for the one-class protocol: {counts[0]} normal and {counts[1]} "
                            f"anomalous rows give, with the 70/30 split of seed {seed} ({protocol!r}), {got}. "
                            f"A training part needs at least {MIN_TRAIN_NORMALS} normal rows (the baselines' "
                            "5 % quantiles) and the test part a normal and an anomalous row; use a larger file")


@dataclass
class Split:
    """One seeded split: ``x_train`` holds the (MinMax-scaled) training normals only."""
    name: str
    protocol: str
    x_train: "torch.Tensor"
    x_test: "torch.Tensor"
    y_test: np.ndarray
    n_anomalies_removed: int
    constant_features: int
    leaked_test_normals: int  # test normals whose source row also sits among the training normals

    @property
    def dim(self) -> int:
        return self.x_train.shape[1]

    def sizes(self) -> dict:
        normals = int((self.y_test == 0).sum())
        return {"dataset": self.name, "protocol": self.protocol, "dim": self.dim, "train normals": len(self.x_train),
                "train anomalies removed": self.n_anomalies_removed, "test": len(self.y_test),
                "test anomalies": int(self.y_test.sum()), "test normals copied in training": self.leaked_test_normals,
                "copied (%)": round(100 * self.leaked_test_normals / max(normals, 1), 1),
                "constant features": self.constant_features}


def split(name: str | int, seed: int = 1, protocol: str = "adbench", root: Path | None = None,
          download: bool = True) -> Split:
    """ADBench's protocol for ``seed`` (rows from :func:`adbench_rows`; ``protocol`` in :data:`PROTOCOLS`),
    then MinMax scaling fitted on the whole training part (anomalies included, as ADBench does),
    and the anomalies removed from the training part (the paper's one-class setting, §5.1.1).
    Features constant on the training part are shifted, not scaled (scikit-learn's rule).  A file too small
    for the protocol (:func:`check_sizes`) raises :class:`~usfkit.data.checks.DataError` before anything trains."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; protocols are {', '.join(PROTOCOLS)}")
    name = resolve_name(name)
    file = path(name, root, download)
    x, y = read_npz(file)
    counts = np.bincount(y, minlength=2)
    if counts.min() < 2:
        raise DataError(f"{file}: {counts[0]} normal and {counts[1]} anomalous rows; a stratified split "
                        "needs at least 2 of each")
    check_sizes(file, y, seed)
    train, test = adbench_rows(y, seed, resample=protocol == "adbench")
    import torch  # here: listing and reading the files needs neither torch nor scikit-learn
    from sklearn.preprocessing import MinMaxScaler

    scaler = MinMaxScaler().fit(x[train].astype(np.float64))
    scale = lambda rows: torch.from_numpy(scaler.transform(x[rows].astype(np.float64)).astype(np.float32))  # noqa: E731
    normal_train = train[y[train] == 0]
    if len(normal_train) == 0:
        raise DataError(f"{file}: no normal rows in the training part ({len(train)} rows); "
                        "the flows train on normals only")
    leaked = int(np.isin(test[y[test] == 0], normal_train).sum())
    constant = int((scaler.data_range_ == 0).sum())
    return Split(name, protocol, scale(normal_train), scale(test), y[test], int((y[train] == 1).sum()), constant,
                 leaked)
