"""The MNIST files for the digit-sequence tasks (Trask et al. 2018 §4.2): finding, checking, loading.

The four standard files, gzipped, come from ``<data_dir>/mnist/`` if that folder holds them, else from the
copy that ships with nalu-suite (:func:`nalu_suite.resources.bundled_mnist_dir`; see
``data/mnist/README.md``). :func:`prepare_mnist` decompresses them once into ``<data_dir>/MNIST/raw/``, the
layout ``torchvision.datasets.MNIST`` reads, and checks every file (IDX header, size and, for the real
MNIST, the canonical md5 of the decompressed bytes); :func:`load_mnist` loads them into one image table
(:class:`MnistDigits`). Nothing is ever downloaded: a missing or corrupt file is a :class:`MnistFileError`
that names the file and says how to get it back. Needs only torch (and torchvision to load).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from nalu_suite.errors import ConfigError
from nalu_suite.resources import bundled_mnist_dir

#: where the gzipped files may live under ``paths.data_dir`` (else the bundled copy), and where they are
#: decompressed
SOURCE_DIR = "mnist"
RAW_DIR = os.path.join("MNIST", "raw")
#: the mirror torchvision downloads from, for users who lost the shipped files
MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
IMAGE_SIDE = 28


@dataclass(frozen=True)
class IdxFile:
    """One of the four MNIST files: name without ``.gz``, content, and the canonical decompressed md5/size."""

    name: str
    kind: str  # "images" | "labels"
    md5: str
    size: int


#: The canonical files (md5 and size of the decompressed bytes, from data/mnist/README.md).
MNIST_FILES: tuple[IdxFile, ...] = (
    IdxFile("train-images-idx3-ubyte", "images", "6bbc9ace898e44ae57da46a324031adb", 47_040_016),
    IdxFile("train-labels-idx1-ubyte", "labels", "a25bea736e30d166cdddb491f175f624", 60_008),
    IdxFile("t10k-images-idx3-ubyte", "images", "2646ac647ad5339dbf082846283269ea", 7_840_016),
    IdxFile("t10k-labels-idx1-ubyte", "labels", "27ae3e4e09519cfbb04c329615203637", 10_008),
)
#: IDX magic numbers: 0x08 = unsigned byte, then the number of dimensions
_MAGIC = {"images": 0x00000803, "labels": 0x00000801}
_HEADER = {"images": 16, "labels": 8}


class MnistFileError(ConfigError):
    """An MNIST file is missing or corrupt; the message names the file and how to restore it."""


def _how_to_get(gz: Path) -> str:
    return (
        f"nalu-suite ships it: restore it with `git checkout -- data/{SOURCE_DIR}/` from the repository "
        f"root (or reinstall nalu-suite), or download {MIRROR}{gz.name} into {gz.parent}/ (or point "
        f"paths.data_dir at the folder that holds {SOURCE_DIR}/)"
    )


def source_dir(data_dir: str | Path) -> Path:
    """Where the gzipped files are read from: ``<data_dir>/mnist/`` if it holds any of the four files, else
    the copy bundled with nalu-suite (:func:`nalu_suite.resources.bundled_mnist_dir`)."""
    local = Path(data_dir) / SOURCE_DIR
    if any((local / f"{spec.name}.gz").is_file() for spec in MNIST_FILES):
        return local
    try:
        return bundled_mnist_dir()
    except FileNotFoundError as err:
        raise MnistFileError(
            f"no MNIST files in {local}/ and {err}. Download the four files from {MIRROR} into {local}/ "
            "(or point paths.data_dir at the folder that holds mnist/)"
        ) from None


def check_idx(path: Path, kind: str) -> int:
    """Validate the IDX header and length of a decompressed file; return the number of items.

    Images must be ``N x 28 x 28`` unsigned bytes, labels ``N`` unsigned bytes (values are checked at load).
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        header = f.read(_HEADER[kind])
    if len(header) < _HEADER[kind]:
        raise MnistFileError(f"{path}: too short for an IDX {kind} header ({size} bytes)")
    magic = int.from_bytes(header[0:4], "big")
    if magic != _MAGIC[kind]:
        raise MnistFileError(
            f"{path}: not an IDX {kind} file (magic number {magic:#010x}, expected {_MAGIC[kind]:#010x})"
        )
    count = int.from_bytes(header[4:8], "big")
    item = 1
    if kind == "images":
        rows, cols = int.from_bytes(header[8:12], "big"), int.from_bytes(header[12:16], "big")
        if (rows, cols) != (IMAGE_SIDE, IMAGE_SIDE):
            raise MnistFileError(f"{path}: images are {rows}x{cols}, expected {IMAGE_SIDE}x{IMAGE_SIDE}")
        item = rows * cols
    expected = _HEADER[kind] + count * item
    if size != expected:
        raise MnistFileError(
            f"{path}: {size} bytes, but its header announces {count} {kind} ({expected} bytes); truncated?"
        )
    return count


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _raw_file_ok(path: Path, spec: IdxFile, verify_checksums: bool) -> bool:
    if not path.is_file():
        return False
    try:
        check_idx(path, spec.kind)
    except MnistFileError:
        return False
    return not verify_checksums or (path.stat().st_size == spec.size and md5_of(path) == spec.md5)


def _umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _decompress(gz: Path, dest: Path) -> None:
    """Gunzip ``gz`` to ``dest`` through a temporary file, so concurrent jobs never see half a file.
    The file gets the mode of any new file (0644 under the usual umask), not the temporary file's 0600."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    except OSError as err:
        raise MnistFileError(
            f"cannot write the decompressed MNIST files into {dest.parent} ({err.strerror or err}); "
            "set paths.data_dir to a writable directory (or NALU_ROOT, which moves data/ and logs/)"
        ) from None
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(gz, "rb") as src:
            for block in iter(lambda: src.read(1 << 20), b""):
                out.write(block)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    except (OSError, EOFError, zlib.error) as err:
        raise MnistFileError(
            f"{gz}: cannot decompress ({err}); the file is corrupt. {_how_to_get(gz)}"
        ) from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def prepare_mnist(data_dir: str | Path, verify_checksums: bool = True) -> Path:
    """Decompress the gzipped files (:func:`source_dir`: ``<data_dir>/mnist/*.gz``, else the bundled
    copy) into ``<data_dir>/MNIST/raw/`` once, validate; return the raw dir.

    A raw file that is already there and valid is left alone. With ``verify_checksums`` (the real MNIST),
    every decompressed file must also have the canonical size and md5; switch it off for other IDX data
    such as test fixtures.
    """
    data_dir = Path(data_dir)
    raw = data_dir / RAW_DIR
    source = None
    for spec in MNIST_FILES:
        dest = raw / spec.name
        if _raw_file_ok(dest, spec, verify_checksums):
            continue
        source = source or source_dir(data_dir)
        gz = source / f"{spec.name}.gz"
        if not gz.is_file():
            raise MnistFileError(f"MNIST file {gz} is missing. {_how_to_get(gz)}")
        _decompress(gz, dest)
        try:
            check_idx(dest, spec.kind)
        except MnistFileError as err:
            raise MnistFileError(f"{gz} decompresses to a bad file: {err}. {_how_to_get(gz)}") from None
        if verify_checksums:
            actual = md5_of(dest)
            if actual != spec.md5:
                raise MnistFileError(
                    f"{gz}: decompressed md5 is {actual}, expected {spec.md5} (not the standard MNIST file). "
                    f"{_how_to_get(gz)}; for other IDX data set task.verify_checksums=false"
                )
    for split in ("train", "t10k"):
        images, labels = (
            check_idx(raw / f"{split}-{k}-idx{d}-ubyte", k) for k, d in (("images", 3), ("labels", 1))
        )
        if images != labels:
            raise MnistFileError(f"{raw}: {split} has {images} images but {labels} labels")
    return raw


@dataclass(frozen=True)
class MnistDigits:
    """All MNIST images in one table: the training images first, then the test images.

    ``images`` is ``uint8 (N, 28, 28)``, ``labels`` ``int64 (N,)``; rows ``[0, n_train)`` are the MNIST
    training set, rows ``[n_train, N)`` the test set, so one index tensor addresses any image.
    """

    images: torch.Tensor
    labels: torch.Tensor
    n_train: int

    @property
    def n_test(self) -> int:
        return self.images.shape[0] - self.n_train


def load_mnist(data_dir: str | Path) -> MnistDigits:
    """Load the decompressed files through ``torchvision.datasets.MNIST`` (never downloading)."""
    from torchvision.datasets import MNIST

    raw = Path(data_dir) / RAW_DIR
    for spec in MNIST_FILES:
        if not (raw / spec.name).is_file():
            raise MnistFileError(
                f"{raw / spec.name} does not exist; run prepare_mnist({str(data_dir)!r}) first"
            )
        check_idx(raw / spec.name, spec.kind)
    train = MNIST(str(data_dir), train=True, download=False)
    test = MNIST(str(data_dir), train=False, download=False)
    labels = torch.cat([train.targets, test.targets]).long()
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
        raise MnistFileError(f"{raw}: labels outside 0..9 (found {int(labels.min())}..{int(labels.max())})")
    return MnistDigits(torch.cat([train.data, test.data]), labels, n_train=len(train.targets))


def write_idx_gz(path: str | Path, values: torch.Tensor) -> Path:
    """Write ``uint8`` images ``(N, 28, 28)`` or labels ``(N,)`` as a gzipped IDX file (for fixtures)."""
    values = values.to(torch.uint8).contiguous()
    header = bytes([0, 0, 0x08, values.dim()]) + b"".join(d.to_bytes(4, "big") for d in values.shape)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + values.numpy().tobytes())
    return path
