"""Saving a matplotlib figure the one way every task, table and benchmark does (PNG, 120 dpi)."""

from __future__ import annotations

from pathlib import Path


def save_figure(fig, path: str | Path) -> Path:
    """Lay out ``fig``, write it to ``path`` (creating its folder) at 120 dpi, close it; return the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
