"""Success against the instruction T, one line per agent (the plot of Trask et al. 2018, §4.5)."""

from __future__ import annotations

from pathlib import Path

from nalu_suite.figures import save_figure

#: ``unit`` -> the agent's name in figures
LABELS = {"lstm": "LSTM (paper's A3C agent)", "nac": "LSTM + NAC (paper)", "nau": "NAU clock (default)"}


def plot_success(curves: dict[str, dict[int, float]], train_T: list[int], path: Path) -> Path:
    """``curves``: ``{label: {T: success}}``; the training range is shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.axvspan(min(train_T) - 0.5, max(train_T) + 0.5, color="grey", alpha=0.15, label="training T")
    for label, success in curves.items():
        T = sorted(success)
        ax.plot(T, [success[k] for k in T], marker=".", linewidth=1.2, label=label)
    ax.set_xlabel("instruction T (steps until the agent must be on the target)")
    ax.set_ylabel("success (reward 1)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Grid-world time tracking (Trask et al. 2018, §4.5)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
