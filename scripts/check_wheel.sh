#!/usr/bin/env bash
# Proves that `pip install nalu-suite` gives a complete package: builds the sdist, builds the wheel *from the
# sdist* (as pip does for a source download), checks what both contain, installs the wheel into a temporary
# venv and runs the console scripts from an empty directory, far from this checkout.
#
# The temporary venv gets the wheel and nothing else; the heavy dependencies (torch, lightning, ...) are
# borrowed from the project's venv through a .pth file that adds its site-packages *after* the venv's own. A
# plain path line in a .pth does not process the .pth files inside that directory, so the editable
# install's finder (which would put <checkout>/src on sys.path) stays inert: the nalu_suite imported is the
# wheel's, and the script asserts it. `pip check` then proves the wheel's declared dependencies are met.
#
# Usage: bash scripts/check_wheel.sh   (PYTHON=... to choose the interpreter whose packages are borrowed;
# default .venv/bin/python, which `make install` creates). KEEP=1 keeps the temporary directory.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
export WANDB_MODE=disabled
export PYTHONDONTWRITEBYTECODE=1
unset PYTHONPATH NALU_ROOT

WORK="$(mktemp -d "${TMPDIR:-/tmp}/nalu-wheel-check.XXXXXX")"
cleanup() {
    if [[ "${KEEP:-0}" == 1 ]]; then echo "check_wheel: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

STEP="setup"
fail() {
    echo "check_wheel: FAILED at step '$STEP': $*" >&2
    exit 1
}
on_error() {
    echo "check_wheel: FAILED at step '$STEP' (command exited $1; rerun with KEEP=1 to inspect $WORK)" >&2
}
trap 'on_error $?' ERR
step() {
    STEP="$1"
    echo "== check_wheel: $STEP"
}

[[ -x "$PYTHON" ]] || fail "$PYTHON not found: run 'make install' first (or set PYTHON)"
"$PYTHON" -c 'import build' 2>/dev/null || fail "the 'build' package is missing from $PYTHON: run 'make install'"

# --- build: sdist, then the wheel from the sdist -------------------------------------------------------
step "build sdist and wheel (python -m build)"
"$PYTHON" -m build --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 || {
    tail -30 "$WORK/build.log" >&2
    fail "python -m build failed"
}
SDIST="$(ls "$WORK"/dist/*.tar.gz)"
WHEEL="$(ls "$WORK"/dist/*.whl)"
echo "   sdist: $(basename "$SDIST") ($(du -h "$SDIST" | cut -f1)); wheel: $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1))"

step "check sdist and wheel contents"
"$PYTHON" - "$ROOT" "$SDIST" "$WHEEL" <<'EOF'
import sys, tarfile, zipfile
from pathlib import Path

root, sdist, wheel = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
with tarfile.open(sdist) as tar:
    # drop the leading "nalu_suite-<version>/"
    in_sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
in_wheel = set(zipfile.ZipFile(wheel).namelist())

mnist = [f"data/mnist/{n}-ubyte.gz" for n in
         ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")]
confs = sorted(p.relative_to(root).as_posix() for p in (root / "conf").rglob("*.yaml")
               if p.parent.name != "local" or p.name == "example.yaml")
problems = []
for path in [*confs, *mnist, "src/nalu_suite/fast_uniform.c", "src/nalu_suite/resources.py", "pyproject.toml"]:
    if path not in in_sdist:
        problems.append(f"sdist lacks {path}")
for path in confs + mnist:
    if f"nalu_suite/{path}" not in in_wheel:
        problems.append(f"wheel lacks nalu_suite/{path}")
for path in ["nalu_suite/conf/train.yaml", "nalu_suite/fast_uniform.c", "nalu_suite/resources.py",
             "nalu_suite/cli/__init__.py"]:
    if path not in in_wheel:
        problems.append(f"wheel lacks {path}")
leaked = [n for n in sorted(in_sdist | in_wheel)
          if "conf/local/" in n and not n.endswith("conf/local/example.yaml")
          or "__pycache__" in n or n.endswith((".pyc", ".so", ".ckpt"))]
problems += [f"must not ship {n}" for n in leaked]
if problems:
    sys.exit("\n".join(problems))
print(f"   sdist: {len(in_sdist)} files; wheel: {len(in_wheel)} files, {len(confs)} configs, 4 MNIST files")
EOF

# --- install the wheel into a temporary venv that borrows the heavy dependencies -------------------------
step "install the wheel into a temporary venv"
VENV="$WORK/venv"
"$PYTHON" -m venv --without-pip "$VENV"
"$PYTHON" -m pip --python "$VENV/bin/python" install --quiet --no-deps "$WHEEL" ||
    fail "pip install of the wheel failed"
DEPS_SITE="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
VENV_SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$DEPS_SITE" >"$VENV_SITE/zz_borrowed_dependencies.pth"

step "pip check (the wheel's declared dependencies are installed)"
"$PYTHON" -m pip --python "$VENV/bin/python" check || fail "the wheel's dependencies are not met"

step "declared dependencies cover every third-party import"
"$VENV/bin/python" - <<'EOF'
import ast, importlib.metadata as md, re, sys
from pathlib import Path

import nalu_suite

pkg = Path(nalu_suite.__file__).parent
declared = {re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0].lower().replace("_", "-")
            for r in md.requires("nalu-suite") or []}
to_dists = md.packages_distributions()
missing = {}
for file in pkg.rglob("*.py"):
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("nalu_suite", "__future__"):
                continue
            dists = {d.lower().replace("_", "-") for d in to_dists.get(top, [top])}
            if not dists & declared:
                missing.setdefault(top, set()).add(file.relative_to(pkg).as_posix())
if missing:
    sys.exit("imported but not declared in pyproject.toml: "
             + "; ".join(f"{m} ({', '.join(sorted(f))})" for m, f in sorted(missing.items())))
print(f"   {len(declared)} declared requirements cover the imports")
EOF

# --- run from an empty directory ---------------------------------------------------------------------
RUN="$WORK/run"
mkdir "$RUN"
cd "$RUN"
export PATH="$VENV/bin:$PATH"

step "the wheel's nalu_suite is the one imported, and finds its own configs and MNIST"
"$VENV/bin/python" - "$VENV" <<'EOF'
import importlib, sys
from pathlib import Path

venv = Path(sys.argv[1]).resolve()
import nalu_suite
from nalu_suite import resources

for what, path in [("nalu_suite", Path(nalu_suite.__file__)), ("conf_dir()", resources.conf_dir()),
                   ("bundled_mnist_dir()", resources.bundled_mnist_dir())]:
    path = path.resolve()
    if not path.is_relative_to(venv):
        sys.exit(f"{what} is {path}, not inside the temporary venv {venv}")
    print(f"   {what}: {path}")
if not (resources.conf_dir() / "train.yaml").is_file():
    sys.exit("conf_dir() has no train.yaml")
for name in ("train", "eval", "predict", "report", "preview", "table"):
    if not callable(getattr(importlib.import_module(f"nalu_suite.cli.{name}"), "main", None)):
        sys.exit(f"nalu_suite.cli.{name} has no main()")
EOF
for script in nalu-train nalu-eval nalu-predict nalu-report nalu-preview nalu-table; do
    [[ -x "$VENV/bin/$script" ]] || fail "console script $script is not installed"
done

step "nalu-train task=static_arith debug=fast"
nalu-train task=static_arith debug=fast >"$WORK/train.log" 2>&1 || {
    tail -30 "$WORK/train.log" >&2
    fail "nalu-train exited non-zero"
}
RESULTS="$(ls -d logs/static_arith/runs/*/results.json 2>/dev/null | head -1 || true)"
[[ -n "$RESULTS" ]] || fail "no logs/static_arith/runs/*/results.json in $RUN"
RUN_DIR="$(dirname "$RESULTS")"
CKPT="$RUN_DIR/checkpoints/best.ckpt"
[[ -f "$CKPT" ]] || fail "no $CKPT"
echo "   wrote $RESULTS"

step "nalu-eval ckpt_path=$CKPT"
nalu-eval ckpt_path="$CKPT" >"$WORK/eval.log" 2>&1 || {
    tail -30 "$WORK/eval.log" >&2
    fail "nalu-eval exited non-zero"
}

step "nalu-train -m task=static_arith debug=fast seed=0,1"
nalu-train -m task=static_arith debug=fast seed=0,1 >"$WORK/multirun.log" 2>&1 || {
    tail -30 "$WORK/multirun.log" >&2
    fail "the multirun exited non-zero"
}
SWEEP_DIR="$(ls -d logs/static_arith/multiruns/*/ 2>/dev/null | head -1 || true)"
[[ -n "$SWEEP_DIR" ]] || fail "no logs/static_arith/multiruns/* in $RUN"
JOBS="$(ls "$SWEEP_DIR"/*/results.json 2>/dev/null | wc -l || true)"
[[ "$JOBS" == 2 ]] || fail "expected 2 results.json under $SWEEP_DIR, found $JOBS"

step "nalu-report $SWEEP_DIR"
nalu-report "$SWEEP_DIR" >"$WORK/report.log" 2>&1 || {
    tail -30 "$WORK/report.log" >&2
    fail "nalu-report exited non-zero"
}
[[ -s "$WORK/report.log" ]] || fail "nalu-report printed nothing"

step "nalu-train task=mnist_add debug=fast (the bundled MNIST, outside the checkout)"
nalu-train task=mnist_add debug=fast >"$WORK/mnist.log" 2>&1 || {
    tail -30 "$WORK/mnist.log" >&2
    fail "nalu-train task=mnist_add exited non-zero"
}
ls logs/mnist_add/runs/*/results.json >/dev/null 2>&1 || fail "no logs/mnist_add/runs/*/results.json in $RUN"

STEP="done"
echo "check_wheel: OK (sdist, wheel contents, installed wheel, nalu-train/eval/report, multirun, mnist_add)"
