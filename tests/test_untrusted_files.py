"""Loading a file from elsewhere never runs code in it: every loader refuses a malicious pickle.

The payload is a checkpoint-shaped ``torch.save`` whose unpickling runs a shell command (``touch MARKER``):
loaded with ``weights_only=False`` it creates the marker (checked first, so the tests prove something).
Each loader -- ``nalu-eval``'s, ``nalu-predict``'s, ``nalu-train ckpt_path=`` (resume) and
``scripts/static_weights.py`` -- must refuse it with a one-line error naming the file, and the marker must
not exist afterwards. A scan of the sources keeps every ``torch.load`` (and Lightning's checkpoint loading)
on ``weights_only=True``. The compiled-kernel cache's own checks are in ``test_fast_uniform.py``.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from nalu_suite.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


class RunsAShellCommand:
    """Unpickling this runs ``touch <marker>``: what a planted checkpoint could do with any command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.fixture
def malicious(tmp_path):
    """``(save, marker)``: ``save(path, shape)`` writes a malicious file laid out as ``shape`` ("lightning"
    checkpoint or "replicas" file) at ``path`` and returns ``path``."""
    marker = tmp_path / "code-ran"

    def save(path: Path, shape: str = "lightning") -> Path:
        payload = RunsAShellCommand(marker)
        if shape == "replicas":
            content = {"seeds": [0], "best": {"model.first.W": torch.zeros(1, 2, 4)}, "config": payload}
        else:
            task = {"name": "num2words", "note": payload}
            content = {"hyper_parameters": {"task": task}, "state_dict": {}, "global_step": 3}
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(content, path)
        return path

    return save, marker


def assert_one_line_naming(message: str, path: Path) -> None:
    assert "\n" not in message.strip(), message
    assert str(path) in message, message


def test_the_payload_does_run_code_when_unpickled_unsafely(malicious, tmp_path):
    save, marker = malicious
    path = save(tmp_path / "evil.ckpt")
    torch.load(path, weights_only=False)  # deliberately unsafe: what no loader of this project may do
    assert marker.exists()


def test_nalu_eval_refuses_a_malicious_checkpoint(malicious, tmp_path):
    from nalu_suite.evaluate import load_checkpoint

    save, marker = malicious
    path = save(tmp_path / "evil.ckpt")
    with pytest.raises(ConfigError) as err:
        load_checkpoint(path)
    assert_one_line_naming(str(err.value), path)
    assert "not a readable PyTorch checkpoint" in str(err.value)
    assert not marker.exists()


def test_nalu_predict_refuses_a_malicious_checkpoint(malicious, tmp_path, capsys):
    from nalu_suite.predict import main

    save, marker = malicious
    path = save(tmp_path / "evil.ckpt")
    assert main([str(path), "forty two"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ")
    assert_one_line_naming(captured.err, path)
    assert "weights_only=True" in captured.err
    assert not marker.exists()


def resume_cfg(make_cfg, path: Path):
    cfg = make_cfg(
        "task=static_arith", "task.op=add", "unit=nau", "trainer.max_steps=5", "trainer.val_check_interval=5"
    )
    with open_dict(cfg):
        cfg.ckpt_path = str(path)  # set after composing: a path is no Hydra override grammar
    return cfg


def test_resuming_from_a_malicious_checkpoint_is_refused(malicious, tmp_path, make_cfg):
    from nalu_suite.train import train

    save, marker = malicious
    path = save(tmp_path / "evil.ckpt")
    with pytest.raises(ConfigError) as err:
        train(resume_cfg(make_cfg, path))
    assert_one_line_naming(str(err.value), path)
    assert not marker.exists()


def test_lightning_itself_resumes_with_weights_only_even_when_torch_is_told_otherwise(
    malicious, tmp_path, make_cfg, monkeypatch
):
    """Lightning 2.6 passes ``weights_only=None`` to ``torch.load`` unless told; torch then defaults to
    ``True`` -- but ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` turns that default off. ``train`` passes
    ``weights_only=True`` explicitly, which the variable cannot override. (The pre-check before Lightning
    is bypassed here to reach Lightning's own loading.)"""
    import nalu_suite.checkpointing as checkpointing
    from nalu_suite.train import train

    save, marker = malicious
    path = save(tmp_path / "evil.ckpt")
    monkeypatch.setattr(checkpointing, "check_resume", lambda *args: 0)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(Exception, match="Weights only load failed"):
        train(resume_cfg(make_cfg, path))
    assert not marker.exists()


@pytest.fixture(scope="module")
def static_weights():
    spec = importlib.util.spec_from_file_location("static_weights", ROOT / "scripts" / "static_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_static_weights_refuses_a_malicious_replicas_file(malicious, tmp_path, static_weights, capsys):
    save, marker = malicious
    path = save(tmp_path / "run" / "checkpoints" / "replicas.pt", shape="replicas")
    with pytest.raises(static_weights.ReplicasFileError) as err:
        static_weights.describe(tmp_path / "run")
    assert_one_line_naming(str(err.value), path)
    with pytest.raises(SystemExit) as exit_info:
        static_weights.main([str(tmp_path)])
    assert str(exit_info.value).startswith("error: ")
    assert_one_line_naming(str(exit_info.value), path)
    assert not marker.exists()


def test_static_weights_reads_the_config_stored_in_replicas_pt(tmp_path, static_weights, capsys):
    task = {"op": "add", "input_size": 8, "subset_ratio": 0.25, "overlap_ratio": 0.5}
    config = {"task": task, "unit": {"name": "nau"}, "seed": 0}
    (tmp_path / "checkpoints").mkdir()
    best = {"model.first.W": torch.zeros(2, 2, 8)}
    torch.save({"seeds": [0, 1], "best": best, "config": config}, tmp_path / "checkpoints" / "replicas.pt")
    assert not (tmp_path / ".hydra").exists()  # nothing but replicas.pt is needed
    assert sum(static_weights.describe(tmp_path).values()) == 2
    assert "task.op=add unit=nau" in capsys.readouterr().out


# ---- every loader in the sources, found by scanning them ---------------------------------------------

SOURCES = sorted(
    p
    for pattern in ("src/**/*.py", "scripts/**/*.py", "*.py", "tests/**/*.py")
    for p in ROOT.glob(pattern)
    if ".venv" not in p.parts
)
LIGHTNING_LOADERS = {"fit", "validate", "test", "predict", "load_from_checkpoint"}


def keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def lightning_load(call: ast.Call, name: str) -> bool:
    """``trainer.fit/validate/test/predict(ckpt_path=...)`` or ``Module.load_from_checkpoint(...)``."""
    return name == "load_from_checkpoint" or (
        name in LIGHTNING_LOADERS and keyword(call, "ckpt_path") is not None
    )


def unsafe_loads(path: Path) -> list[str]:
    """``file:line: what`` for each call in ``path`` that could unpickle code."""
    found, text = [], path.read_text()
    lines = text.splitlines()
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
        name, where = node.func.attr, f"{path.relative_to(ROOT)}:{node.lineno}"
        if "# deliberately unsafe" in lines[node.lineno - 1]:
            continue
        if owner == "torch" and name == "load" and not is_true(keyword(node, "weights_only")):
            found.append(f"{where}: torch.load without weights_only=True")
        elif owner == "pickle" and name in ("load", "loads") and path.parts[-2] != "integration":
            found.append(f"{where}: pickle.{name}")
        elif owner in ("np", "numpy") and name == "load" and is_true(keyword(node, "allow_pickle")):
            found.append(f"{where}: np.load with allow_pickle=True")
        elif owner == "yaml" and name in ("load", "unsafe_load", "full_load"):
            found.append(f"{where}: yaml.{name} (use yaml.safe_load)")
        elif lightning_load(node, name) and not is_true(keyword(node, "weights_only")):
            found.append(f"{where}: Lightning {name}(ckpt_path=...) without weights_only=True")
    return found


def test_every_loader_in_the_sources_refuses_pickled_code():
    assert any(p.name == "static_weights.py" for p in SOURCES)  # the scan does see the scripts
    found = [line for path in SOURCES for line in unsafe_loads(path)]
    assert not found, "\n".join(found)
