"""Where a program_eval checkpoint goes wrong: exact accuracy per operation and digit length.

    python scripts/program_breakdown.py logs/program_eval/runs/<run>/checkpoints/best.ckpt
    python scripts/program_breakdown.py CKPT --digits 2,4,6 --n 1000

For each operation of the checkpoint's task (``pair``, ``vars``, ``if_expr``, ``if_stmt``; ``addition`` for
``task.kind=addition``) and each digit length, ``n`` fresh programs of that operation alone (nesting as
trained) are answered in eval mode. A wrong answer is a *decision* error when it is off by more than 0.3
times the largest literal (a sign or a branch taken wrongly) and a *precision* error otherwise (the right
coefficients, not exact enough for the literals' size). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch

from nalu_suite.evaluate import load_checkpoint, model_from_checkpoint
from nalu_suite.tasks.program_eval.encoding import encode_programs
from nalu_suite.tasks.program_eval.programs import ProgramGenerator

#: an error above this fraction of the largest literal is a wrong decision, not imprecision
DECISION_FRACTION = 0.3


def breakdown(ckpt: Path, digits: list[int], n: int, seed: int = 0) -> list[dict]:
    """One row per operation and digit length: ``exact``, ``decision`` and ``precision`` error rates."""
    raw = load_checkpoint(ckpt)
    name = raw["hyper_parameters"]["task"].get("name")
    if name != "program_eval":
        raise SystemExit(f"error: {ckpt} is a {name} checkpoint, not program_eval")
    task, model = model_from_checkpoint(raw)
    rows = []
    for op in task.operations if task.kind == "programs" else ("addition",):
        ops = (op,) if task.kind == "programs" else task.operations
        for k in digits:
            generator = ProgramGenerator(task.kind, k, task.nesting, ops, exact_digits=k != task.train_digits)
            programs = generator.samples(random.Random(seed), n)
            tokens, lengths, numbers, literals, target = encode_programs(programs, task.num_literals)
            with torch.no_grad():
                error = (model(tokens, lengths, numbers, literals) - target).abs()
            wrong = ~(error < 0.5)  # NaN counts as wrong
            decision = wrong & ~(error <= DECISION_FRACTION * literals.abs().amax(1))
            rows.append(
                {
                    "operation": op,
                    "digits": k,
                    "exact": 1 - wrong.float().mean().item(),
                    "decision": decision.float().mean().item(),
                    "precision": (wrong & ~decision).float().mean().item(),
                }
            )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| operation | digits | exact | decision errors | precision errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        rates = " | ".join(f"{r[key]:.3f}" for key in ("exact", "decision", "precision"))
        lines.append(f"| {r['operation']} | {r['digits']} | {rates} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--digits", default="2,4", help="comma-separated digit lengths (default 2,4)")
    parser.add_argument("--n", type=int, default=1000, help="programs per operation and length")
    args = parser.parse_args()
    if not args.checkpoint.is_file():
        raise SystemExit(f"error: no checkpoint at {args.checkpoint}")
    print(markdown(breakdown(args.checkpoint, [int(d) for d in args.digits.split(",")], args.n)))


if __name__ == "__main__":
    main()
