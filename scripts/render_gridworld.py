"""Render one grid-world episode (Trask et al. 2018, §4.5) of a trained checkpoint, so you can watch the agent
wait: a PNG strip of every step (the agent's path, the clock t / T, the target), or an animated GIF.

    python scripts/render_gridworld.py outputs/.../checkpoints/best.ckpt --T 30 --out episode.png
    python scripts/render_gridworld.py CKPT --T 30 --out episode.gif --seed 3 --sample
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nalu_suite.envs import ACTION_NAMES


def load_agent(ckpt: str):
    """The agent and the task of a grid-world checkpoint (weights only; nothing in it runs)."""
    import torch

    from nalu_suite.errors import ConfigError
    from nalu_suite.tasks import build_task

    raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    hp = raw.get("hyper_parameters", {})
    if hp.get("task", {}).get("name") != "gridworld":
        raise ConfigError(f"{ckpt} is not a gridworld checkpoint (task {hp.get('task', {}).get('name')!r})")
    task = build_task(hp["task"], hp["unit"], int(hp.get("seed", 0)))
    agent = task.build_model()
    agent.load_state_dict(
        {k[len("model.") :]: v for k, v in raw["state_dict"].items() if k.startswith("model.")}
    )
    return agent.eval(), task


def draw(frames, grid_size: int, out: Path) -> Path:
    """Draw ``frames`` (``evaluate.record_episode``) as a PNG strip or, for ``.gif``, an animation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    def paint(ax, k):
        frame = frames[k]
        ax.clear()
        ax.imshow(frame["image"], extent=(-0.5, grid_size - 0.5, grid_size - 0.5, -0.5))
        path = [f["agent"] for f in frames[: k + 1]]
        ax.plot([p[1] for p in path], [p[0] for p in path], "w:", linewidth=1)
        ax.set_xticks([])
        ax.set_yticks([])
        action = "" if frame["action"] is None else ACTION_NAMES[frame["action"]]
        done = "  reward 1" if frame["reward"] else ""
        ax.set_title(f"t={frame['t']}/T={frame['T']} {action}{done}", fontsize=8)

    if out.suffix == ".gif":
        fig, ax = plt.subplots(figsize=(3, 3.2))
        FuncAnimation(fig, lambda k: paint(ax, k), frames=len(frames)).save(out, writer=PillowWriter(fps=3))
    else:
        cols = min(len(frames), 10)
        rows = (len(frames) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
        for k, ax in enumerate(axes.flat):
            paint(ax, k) if k < len(frames) else ax.axis("off")
        fig.tight_layout()
        fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--T", type=int, default=20, help="the instruction (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="draws the start cells")
    parser.add_argument("--sample", action="store_true", help="sample actions (default: the most probable)")
    parser.add_argument("--out", default="gridworld_episode.png", help=".png strip or .gif animation")
    args = parser.parse_args(argv)

    from nalu_suite.errors import ConfigError, check_positive_int
    from nalu_suite.tasks.gridworld.evaluate import record_episode

    try:
        check_positive_int("--T", args.T)
        agent, task = load_agent(args.checkpoint)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    frames = record_episode(agent, task.build_env(), args.T, args.seed, greedy=not args.sample)
    out = draw(frames, task.grid_size, Path(args.out))
    print(f"{out}: {len(frames) - 1} steps, reward {sum(f['reward'] for f in frames):g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
