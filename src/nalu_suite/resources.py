"""Where the package's own files are: the Hydra configs and the bundled MNIST files.

In a wheel they are package data (``nalu_suite/conf``, ``nalu_suite/data/mnist``, copied there by
hatchling's ``force-include``); in a checkout (editable install) they are the repository's ``conf/`` and
``data/mnist/``. Both ways resolve here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT_DIR = PACKAGE_DIR.parents[1]  # <checkout>/src/nalu_suite -> <checkout>


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"nalu-suite is incomplete: none of {tried} exists; reinstall the package")


def conf_dir() -> Path:
    """The Hydra config directory (holds ``train.yaml``): the package's copy, else the checkout's."""
    return _first_existing(PACKAGE_DIR / "conf", CHECKOUT_DIR / "conf")


def bundled_mnist_dir() -> Path:
    """The four gzipped MNIST files that ship with nalu-suite (package data, else the checkout's)."""
    return _first_existing(PACKAGE_DIR / "data" / "mnist", CHECKOUT_DIR / "data" / "mnist")
