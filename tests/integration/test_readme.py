"""The README's commands work, so the front page cannot rot.

Every line of a fenced ``bash`` block in README.md is a command (``#`` comments dropped, ``\\``
continuations joined). Each block runs in a fresh temporary directory, its commands in order, so a command
may read what the block's earlier commands wrote. The rule that makes them cheap:

* a console script (``nalu-train``, ``nalu-eval``, ``nalu-predict``, ``nalu-report``, ``nalu-preview``,
  ``nalu-table``, ``nalu-bench``; in a checkout ``python train.py`` / ``python eval.py``) runs as
  ``sys.executable -m nalu_suite.cli.<name>`` with ``WANDB_MODE=disabled`` and ``OMP_NUM_THREADS=1``, at
  most ``TIMEOUT`` s;
* a training command (``nalu-train``, ``nalu-table``, ``nalu-bench``) gets ``debug=fast`` (a few steps of
  everything); a sweep (``-m``) keeps ``-m`` and its launcher but is cut to its first job
  (``key=a,b,c`` -> ``key=a``, ``key=range(a,b)`` -> ``key=a``), and ``replicas=R`` becomes ``replicas=2``;
* ``<run dir>`` and ``<multirun dir>`` stand for the newest run / sweep directory the block wrote under
  ``./logs``;
* any other command must be listed in ``EXEMPT`` with the reason it does not run here; an unlisted one
  fails the test, so a new README command has to be classified.

A training command passes when it exits 0 and writes a ``results.json``; the others when they exit 0. The
``python`` blocks run in-process. Links from README.md and docs/*.md to files and headings must resolve.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TIMEOUT = 120  # seconds per command

#: console script (or checkout script) -> module of ``nalu_suite.cli``
SCRIPTS = {
    "nalu-train": "train",
    "nalu-eval": "eval",
    "nalu-predict": "predict",
    "nalu-report": "report",
    "nalu-preview": "preview",
    "nalu-table": "table",
    "nalu-bench": "bench",
}
CHECKOUT_SCRIPTS = {"train.py": "train", "eval.py": "eval"}
TRAINING = {"train", "table", "bench"}

#: placeholders of README commands -> one shell word each, filled in by ``placeholders``
PLACEHOLDERS = {"<run dir>": "@RUN_DIR@", "<multirun dir>": "@MULTIRUN_DIR@"}

#: README commands that do not run here, by their first words, and why.
EXEMPT = {
    "make train": "long: creates .venv and trains num2words for about a minute; the install block's "
    "`nalu-train task=num2words` runs the same training with debug=fast",
    "make test": "runs this test suite itself",
    "pip install": "installs the package; the test runs the one installed in this environment",
}


def fenced_blocks(text: str, lang: str) -> list[tuple[int, str]]:
    """(first line number, body) of every ```lang block."""
    blocks, body, start, inside = [], [], 0, False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not inside and stripped == f"```{lang}":
            inside, body, start = True, [], number + 1
        elif inside and stripped.startswith("```"):
            inside = False
            blocks.append((start, "\n".join(body)))
        elif inside:
            body.append(line)
    return blocks


def commands(block: str) -> list[str]:
    """The block's commands: continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    for placeholder, token in PLACEHOLDERS.items():
        joined = joined.replace(placeholder, token)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(shlex.join(words))
    return out


def exemption(command: str) -> str | None:
    for prefix, reason in EXEMPT.items():
        if command == prefix or command.startswith(prefix + " "):
            return reason
    return None


def cut_sweep(arg: str) -> str:
    """``key=a,b,c`` -> ``key=a``; ``key=range(a,b)`` -> ``key=a``; ``replicas=R`` -> ``replicas=2``."""
    if "=" not in arg or arg.startswith("-"):
        return arg
    key, value = arg.split("=", 1)
    if key == "replicas":
        return "replicas=2"
    if key.startswith("hydra") or value.startswith(("[", "{", "'", '"')):
        return arg
    found = re.fullmatch(r"range\((-?\d+),.*\)", value)
    if found:
        return f"{key}={found.group(1)}"
    return f"{key}={value.split(',')[0]}"


def newest(cwd: Path, pattern: str) -> Path:
    found = sorted(cwd.glob(pattern), key=lambda p: p.stat().st_mtime)
    assert found, f"no {pattern} in {cwd} for a README placeholder: an earlier command should have made it"
    return found[-1]


def placeholders(arg: str, cwd: Path) -> str:
    if PLACEHOLDERS["<run dir>"] in arg:
        arg = arg.replace(PLACEHOLDERS["<run dir>"], str(newest(cwd, "logs/*/runs/*")))
    if PLACEHOLDERS["<multirun dir>"] in arg:
        arg = arg.replace(PLACEHOLDERS["<multirun dir>"], str(newest(cwd, "logs/*/multiruns/*")))
    return arg


def plan(command: str) -> tuple[str, list[str]]:
    """(cli module, arguments) of a runnable README command; fails for an unclassified one."""
    words = shlex.split(command)
    if words[0] in SCRIPTS:
        return SCRIPTS[words[0]], words[1:]
    if words[0] == "python" and len(words) > 1 and words[1] in CHECKOUT_SCRIPTS:
        return CHECKOUT_SCRIPTS[words[1]], words[2:]
    pytest.fail(f"README command {command!r} is neither a console script nor listed in EXEMPT with a reason")


def results_files(cwd: Path) -> set[Path]:
    return set(cwd.glob("logs/**/results.json"))


def run_command(command: str, cwd: Path) -> None:
    module, args = plan(command)
    if module in TRAINING:
        if "-m" in args or "--multirun" in args or any(a.startswith("replicas=") for a in args):
            args = [cut_sweep(a) for a in args]
        args = [*args, "debug=fast"]
    args = [placeholders(a, cwd) for a in args]
    # one intra-op thread: the debug=fast models are tiny, and on a shared, loaded machine a second thread
    # made program_eval steps many times slower (docs/program_eval.md)
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    before = results_files(cwd)
    done = subprocess.run(
        [sys.executable, "-m", f"nalu_suite.cli.{module}", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, (
        f"README command failed (exit {done.returncode}): {command}\nran: {shlex.join(args)}\n"
        f"--- stderr (end) ---\n{done.stderr[-3000:]}\n--- stdout (end) ---\n{done.stdout[-2000:]}"
    )
    if module == "train":
        assert results_files(cwd) - before, f"{command}: exit 0 but no new results.json under {cwd}/logs"


README_TEXT = README.read_text(encoding="utf-8")
BASH_BLOCKS = fenced_blocks(README_TEXT, "bash")


def test_every_readme_command_is_classified():
    """Cheap and always on: each README command is a console script or exempt with a reason."""
    assert BASH_BLOCKS, "README.md has no ```bash blocks"
    for _, block in BASH_BLOCKS:
        for command in commands(block):
            if exemption(command) is None:
                plan(command)


@pytest.mark.slow
@pytest.mark.parametrize("line, block", BASH_BLOCKS, ids=[f"README.md:{n}" for n, _ in BASH_BLOCKS])
def test_readme_bash_block_runs(line, block, tmp_path):
    runnable = [c for c in commands(block) if exemption(c) is None]
    if not runnable:
        pytest.skip("; ".join(f"{c}: {exemption(c)}" for c in commands(block)))
    for command in runnable:
        run_command(command, tmp_path)


PYTHON_BLOCKS = fenced_blocks(README_TEXT, "python")


@pytest.mark.parametrize("line, block", PYTHON_BLOCKS, ids=[f"README.md:{n}" for n, _ in PYTHON_BLOCKS])
def test_readme_python_block_runs(line, block):
    exec(compile(block, f"README.md:{line}", "exec"), {"__name__": "readme_example"})


def test_readme_is_a_front_page():
    lines = README_TEXT.splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; details belong in docs/"
    assert "<!--" not in README_TEXT, "README.md holds an HTML comment (an unfilled placeholder?)"


# --- links --------------------------------------------------------------------------------------


def headings(text: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (outside fenced code)."""
    anchors, inside = set(), False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            inside = not inside
        elif not inside and re.match(r"#{1,6} ", line):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


LINKED = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "BENCHMARKS.md"]


@pytest.mark.parametrize("page", LINKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    text_outside_code = re.sub(r"```.*?```", "", text, flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text_outside_code):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no file {file})")
        elif anchor and file.suffix == ".md" and anchor not in headings(file.read_text(encoding="utf-8")):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"{page.name}: broken links: {broken}"
