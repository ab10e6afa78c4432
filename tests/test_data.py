"""Data loading: the file checks (IDX headers, published SHA-256s, `SHA256SUMS` as `sha256sum -c`
reads it), per-process hashing, and splits the caller cannot corrupt; plus the loaded splits themselves.

Roots are built in tmp_path from links to (or copies of) the real files, or from tiny synthetic IDX
files of the right size, and only the small t10k split is read, so the checks take seconds."""

import hashlib
import os
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import config, data, runtime

MNIST_T10K = ("MNIST/raw/t10k-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte")
FASHION_T10K = tuple(rel.replace("MNIST/", "FashionMNIST/") for rel in MNIST_T10K)
TRAIN = [f"{d}/raw/train-{kind}-ubyte" for d in ("MNIST", "FashionMNIST") for kind in ("images-idx3", "labels-idx1")]


@pytest.fixture(scope="module")
def real() -> Path:
    return runtime.data_root()  # $DC_DATA_ROOT: the original files


@pytest.fixture(autouse=True)
def fresh_cache():
    data.load.cache_clear()
    yield
    data.load.cache_clear()


def use_root(monkeypatch, root: Path, train_split: bool = True) -> Path:
    """Make `root` the data root, with links to the real training files unless told otherwise
    (the tests read the t10k split; torchvision, which read the files before, wants both)."""
    real = runtime.data_root()
    for rel in TRAIN if train_split else ():
        if not (root / rel).exists():
            place(root, rel, real / rel)
    monkeypatch.setenv(config.DATA_ROOT_ENV, str(root))
    return root


def place(root: Path, rel: str, source: Path | bytes, copy: bool = False) -> Path:
    """root/rel as a link to (or copy of) `source`, or holding the bytes `source`."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        path.write_bytes(source)
    elif copy:
        shutil.copyfile(source, path)
    else:
        path.symlink_to(source)
    return path


def idx_file(magic: int, dims: tuple[int, ...], body: bytes | None = None) -> bytes:
    """An IDX file: big-endian magic, the dimensions, then the unsigned bytes (zeros by default)."""
    return struct.pack(f">{len(dims) + 1}I", magic, *dims) + (body if body is not None else bytes(int(np.prod(dims))))


IMAGES, LABELS = idx_file(2051, (10000, 28, 28)), idx_file(2049, (10000,))


def synthetic_root(root: Path, images: bytes = IMAGES, labels: bytes = LABELS) -> Path:
    place(root, MNIST_T10K[0], images)
    place(root, MNIST_T10K[1], labels)
    return root


# --- IDX headers and published digests, with or without SHA256SUMS -------------------------


@pytest.mark.parametrize("rel,content,problem", [
    (MNIST_T10K[0], idx_file(2049, (10000, 28, 28)), "IDX magic number 2049, the magic of an IDX labels file, "
                                                "expected 2051 (unsigned bytes, 3 dimensions: images)"),
    (MNIST_T10K[1], idx_file(2051, (10000,)), "IDX magic number 2051, the magic of an IDX images file, expected 2049"),
    (MNIST_T10K[0], idx_file(2051, (9999, 28, 28), bytes(10000 * 28 * 28)), "9999 images, expected 10000"),
    (MNIST_T10K[0], idx_file(2051, (10000, 14, 56)), "images of 14x56 pixels, expected 28x28"),
    (MNIST_T10K[1], idx_file(2049, (9999,), bytes(10000)), "9999 labels, expected 10000 (one per image"),
    (MNIST_T10K[1], idx_file(2049, (10000,), bytes(7) + b"\x0a" + bytes(9992)), "label 10 at item 7, expected class "
                                                                            "labels 0..9"),
])
def test_a_wrong_idx_header_or_label_is_named(tmp_path, monkeypatch, rel, content, problem):
    root = use_root(monkeypatch, synthetic_root(tmp_path))
    place(root, rel, content)
    with pytest.raises(data.DatasetInvalid, match=re.escape(f"{root / rel} has {problem}")) as err:
        data.load("mnist", False)
    assert f"not {rel}" in str(err.value) and "set DC_DATA_ROOT to a folder" in str(err.value)


def test_a_sound_idx_file_that_is_not_the_published_one_is_refused(tmp_path, monkeypatch):
    root = use_root(monkeypatch, synthetic_root(tmp_path))
    with pytest.raises(data.DatasetInvalid, match=re.escape(
            f"{root / MNIST_T10K[0]} is not the published {MNIST_T10K[0]}: damaged or a different file, "
            f"SHA-256 {hashlib.sha256(IMAGES).hexdigest()}, expected {data.PUBLISHED_SHA256[MNIST_T10K[0]]}")):
        data.load("mnist", False)


def test_a_damaged_file_is_refused_without_sha256sums(tmp_path, monkeypatch, real):
    root = use_root(monkeypatch, tmp_path)
    place(root, MNIST_T10K[0], real / MNIST_T10K[0])
    labels = bytearray((real / MNIST_T10K[1]).read_bytes())
    labels[8] = (labels[8] + 1) % 10  # still a valid label
    place(root, MNIST_T10K[1], bytes(labels))
    with pytest.raises(data.DatasetInvalid, match=f"is not the published {MNIST_T10K[1]}: damaged"):
        data.load("mnist", False)


@pytest.mark.parametrize("from_mnist", [(1,), (0, 1)])  # MNIST's labels under Fashion's images; the whole split
@pytest.mark.parametrize("with_sums", [False, True])  # a SHA256SUMS made of the wrong files does not help
def test_mnist_files_in_fashion_raw_are_refused(tmp_path, monkeypatch, real, from_mnist, with_sums):
    root = use_root(monkeypatch, tmp_path)
    for i, rel in enumerate(FASHION_T10K):
        place(root, rel, real / (MNIST_T10K if i in from_mnist else FASHION_T10K)[i])
    if with_sums:
        (root / "SHA256SUMS").write_text("".join(f"{hashlib.sha256((root / rel).read_bytes()).hexdigest()}  {rel}\n"
                                                 for rel in FASHION_T10K))
    wrong = FASHION_T10K[from_mnist[0]]
    with pytest.raises(data.DatasetInvalid, match=re.escape(
            f"{root / wrong} is not the published {wrong}: it is {wrong.replace('Fashion', '')}")):
        data.load("fashion", False)


def test_the_original_files_load_from_any_root_without_the_other_split(tmp_path, monkeypatch, real):
    for rel in FASHION_T10K:
        place(tmp_path, rel, real / rel)
    use_root(monkeypatch, tmp_path, train_split=False)  # no SHA256SUMS, no training split
    split = data.load("fashion", False)
    assert split.classes[0] == "T-shirt/top" and split.labels.bincount().tolist() == [1000] * 10


# --- SHA256SUMS read as `sha256sum -c` reads it ---------------------------------------------


@pytest.mark.parametrize("entry", ["{hex}  ./{rel}", "{hex} *./{rel}", "{hex} *{rel}", "  {hex}  ./{rel}",
                                   "SHA256 (./{rel}) = {hex}"])
def test_sha256sums_entries_are_matched_in_every_form(tmp_path, monkeypatch, entry):
    root = use_root(monkeypatch, synthetic_root(tmp_path))
    (root / "SHA256SUMS").write_text(entry.format(hex="AB" * 32, rel=MNIST_T10K[0])+ "\n")
    with pytest.raises(data.DatasetInvalid, match=re.escape(
            f"{root / MNIST_T10K[0]} does not match its checksum in {root / 'SHA256SUMS'} (SHA256 {'ab' * 32}, "
            f"found {hashlib.sha256(IMAGES).hexdigest()})")):
        data.load("mnist", False)


def test_sha256sums_with_uppercase_digests_comments_and_blank_lines_passes(tmp_path, monkeypatch, real):
    for rel in MNIST_T10K:
        place(tmp_path, rel, real / rel)
    sums = dict(reversed(line.split()) for line in (real / "SHA256SUMS").read_text().splitlines())
    digests = [sums[rel].upper() for rel in MNIST_T10K]
    (tmp_path / "SHA256SUMS").write_text(f"# sha256sum -c SHA256SUMS\r\n\r\n{digests[0]}  ./{MNIST_T10K[0]}\r\n"
                                         f"\n   \n{digests[1]} *{MNIST_T10K[1]}\r\n")
    use_root(monkeypatch, tmp_path)
    assert len(data.load("mnist", False)) == 10000


@pytest.mark.parametrize("line", ["garbage", "0" * 32 + "  " + MNIST_T10K[0], "0" * 64, "0" * 64 + "  "])
def test_a_malformed_sha256sums_line_is_named(tmp_path, monkeypatch, line):
    root = use_root(monkeypatch, synthetic_root(tmp_path))
    (root / "SHA256SUMS").write_text(f"# checksums\n\n{line}\n")
    with pytest.raises(data.DatasetInvalid, match=re.escape(f"{root / 'SHA256SUMS'}, line 3: {line!r} is not a "
                                                            "SHA-256 checksum line; expected")) as err:
        data.load("mnist", False)
    assert "regenerate" in str(err.value)


# --- hashing once, checking every load, handing out copies ----------------------------------


class CountingHashlib:
    """`hashlib` that records each hash computed."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        attr = getattr(hashlib, name)
        if name not in ("sha256", "file_digest"):
            return attr

        def counted(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)
        return counted


def test_each_file_is_hashed_once_until_it_changes(tmp_path, monkeypatch, real):
    for rel in MNIST_T10K:
        place(tmp_path, rel, real / rel, copy=True)  # paths this process has not hashed yet
    shutil.copyfile(real / "SHA256SUMS", tmp_path / "SHA256SUMS")
    use_root(monkeypatch, tmp_path)
    counting = CountingHashlib()
    monkeypatch.setattr(data, "hashlib", counting)
    data.load("mnist", False)
    data.load("mnist", False)
    assert len(counting.calls) == 2
    labels = tmp_path / MNIST_T10K[1]
    st = labels.stat()
    os.utime(labels, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    data.load("mnist", False)
    assert len(counting.calls) == 3


def test_every_load_checks_its_root_and_files_again(tmp_path, monkeypatch, real):
    root = use_root(monkeypatch, tmp_path / "root")
    place(root, MNIST_T10K[0], real / MNIST_T10K[0])
    labels = place(root, MNIST_T10K[1], real / MNIST_T10K[1], copy=True)
    data.load("mnist", False)
    damaged = bytearray(labels.read_bytes())
    damaged[8] = (damaged[8] + 1) % 10
    labels.write_bytes(damaged)
    with pytest.raises(data.DatasetInvalid, match="damaged"):  # the file changed since the last load
        data.load("mnist", False)
    use_root(monkeypatch, tmp_path / "empty")
    with pytest.raises(data.DatasetMissing):  # another root, not the split read before
        data.load("mnist", False)


def test_loads_hand_out_copies_the_caller_may_edit(real):
    first = data.load("mnist", False)
    images, labels = first.images.clone(), first.labels.clone()
    first.images.add_(1)
    first.labels.zero_()
    second = data.load("mnist", False)
    assert torch.equal(second.images, images) and torch.equal(second.labels, labels)


# --- the loaded splits ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion"])
@pytest.mark.parametrize("train,n", [(True, 60000), (False, 10000)])
def test_split_shapes_and_normalisation(name, train, n):
    split = data.load(name, train)
    assert split.images.shape == (n, 1, 28, 28) and split.images.dtype == torch.float32
    assert split.labels.shape == (n,) and split.labels.dtype == torch.int64
    assert set(split.labels.unique().tolist()) == set(range(10))
    assert abs(split.images.mean().item()) < 0.02 and abs(split.images.std().item() - 1) < 0.02
    pixels = split.pixels()
    assert pixels.min() >= 0 and pixels.max() <= 1
    assert torch.allclose(data.normalize(pixels, name), split.images, atol=1e-5)


def test_fashion_is_balanced(fashion):
    assert fashion.labels.bincount().tolist() == [6000] * 10


def test_stratified_subset_is_balanced_and_deterministic():
    mnist = data.load("mnist", True)
    a, b = data.stratified_subset(mnist, 30000, seed=1), data.stratified_subset(mnist, 30000, seed=1)
    assert a.labels.bincount().tolist() == [3000] * 10
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.labels, data.stratified_subset(mnist, 30000, seed=2).labels)
    with pytest.raises(ValueError):
        data.stratified_subset(mnist, 30001, seed=1)


def test_class_sampling(fashion):
    g = torch.Generator().manual_seed(0)
    imgs = fashion.sample_class(3, 50, g)
    idx = fashion.class_indices(3)
    # every sampled image is an image of class 3
    matches = (imgs.flatten(1)[:, None, :] == fashion.images[idx].flatten(1)[None]).all(-1).any(-1)
    assert matches.all()
    images, labels = data.random_per_class(fashion, 5, seed=0)
    assert images.shape == (50, 1, 28, 28) and labels.bincount().tolist() == [5] * 10


@pytest.mark.parametrize("kwargs, name", [({"n_test": -5}, "n_test"), ({"n_test": 0}, "n_test"),
                                          ({"n_train": 605}, "n_train"), ({"n_val": -10}, "n_val"),
                                          ({"n_train": 50000, "n_val": 5000}, "n_train \\+ n_val")])
def test_bad_split_sizes_fail_before_loading(kwargs, name, monkeypatch):
    monkeypatch.setattr(data, "load", lambda *a: pytest.fail("loaded data before checking"))
    sizes = {"n_train": 600, "n_val": 200, **kwargs}
    with pytest.raises(ValueError, match=f"{name}=.*valid"):
        data.mnist_splits(sizes["n_train"], sizes["n_val"], n_test=sizes.get("n_test"))


def test_splits_are_disjoint_and_stratified():
    s = data.mnist_splits(600, 200, seed=0)
    (xt, yt), (xv, yv), (_, ys) = s["train"], s["val"], s["test"]
    assert yt.bincount().tolist() == [60] * 10 and yv.bincount().tolist() == [20] * 10
    assert len(ys) == 10000 and 0 <= xt.min() and xt.max() <= 1
    flat_t, flat_v = xt.flatten(1), xv.flatten(1)
    assert not any(bool((flat_t == v).all(1).any()) for v in flat_v[:50])


@pytest.mark.parametrize("kwargs, name", [({"n_test": True}, "n_test"), ({"n_test": 5.0}, "n_test"),
                                          ({"n_train": True}, "n_train"), ({"seed": 2 ** 70}, "seed"),
                                          ({"seed": -1}, "seed")])
def test_booleans_and_bad_seeds_fail_before_loading(kwargs, name, monkeypatch):
    """n_test=True meant one test image."""
    monkeypatch.setattr(data, "load", lambda *a: pytest.fail("loaded data before checking"))
    with pytest.raises(ValueError, match=f"^{name}=.*valid"):
        data.mnist_splits(**{"n_train": 600, "n_val": 200, **kwargs})
