"""Callbacks come from config (conf/callbacks/*.yaml, `_target_` entries), like loggers."""

from __future__ import annotations

from nalu_suite.runtime import validate
from nalu_suite.train import build_callbacks


def built(make_cfg, *overrides):
    cfg = make_cfg("task=static_arith", "task.op=add", *overrides)
    return {type(cb).__name__: cb for cb in build_callbacks(cfg, validate(cfg))}


def test_early_stopping_and_lr_monitor_are_added_from_the_command_line(make_cfg):
    callbacks = built(
        make_cfg, "callbacks=[default,early_stopping,lr_monitor]", "callbacks.early_stopping.patience=3"
    )
    assert {"RunCheckpoint", "EarlyStopping", "LearningRateMonitor", "WandbExtras"} <= set(callbacks)
    stopper = callbacks["EarlyStopping"]
    assert stopper.monitor == "val/mse" and stopper.patience == 3  # `monitor: task` is the task's metric
    assert callbacks["RunCheckpoint"].monitor == "val/mse"


def test_a_callback_is_dropped_with_null_and_none_keeps_only_the_wandb_extras(make_cfg, cfg_in, tmp_path):
    assert "TQDMProgressBar" not in built(make_cfg)  # make_cfg sets callbacks.progress_bar=null
    assert "TQDMProgressBar" in built(lambda *o: cfg_in(tmp_path, *o))
    assert set(built(lambda *o: cfg_in(tmp_path, *o), "callbacks=none")) == {"WandbExtras"}
    assert "RichProgressBar" in built(lambda *o: cfg_in(tmp_path, *o), "callbacks=rich")
