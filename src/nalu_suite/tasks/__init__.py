"""Task registry: name -> ``Task`` subclass, imported lazily so one task's dependencies stay its own."""

from __future__ import annotations

import importlib

from nalu_suite.errors import check_choice
from nalu_suite.tasks.base import ArithmeticModel, Task

TASKS: dict[str, str] = {
    "static_arith": "nalu_suite.tasks.static_arith:StaticArithTask",
    "smat": "nalu_suite.tasks.smat:SmatTask",
    "division": "nalu_suite.tasks.smat:DivisionTask",
    "ten_param": "nalu_suite.tasks.ten_param:TenParamTask",
    "recurrent_arith": "nalu_suite.tasks.recurrent_arith:RecurrentArithTask",
    "identity_failure": "nalu_suite.tasks.identity_failure:IdentityFailureTask",
    "num2words": "nalu_suite.tasks.num2words:Num2WordsTask",
    "mnist_count": "nalu_suite.tasks.mnist.task:MnistCountTask",
    "mnist_add": "nalu_suite.tasks.mnist.task:MnistAddTask",
    "mnist_prod": "nalu_suite.tasks.mnist.product:MnistProdTask",
    "program_eval": "nalu_suite.tasks.program_eval.task:ProgramEvalTask",
    "gridworld": "nalu_suite.tasks.gridworld.task:GridWorldTask",
}
TASK_NAMES = tuple(sorted(TASKS))


def get_task_class(name: str) -> type[Task]:
    check_choice("task", name, TASK_NAMES)
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_task(task: dict, unit: dict, seed: int) -> Task:
    """Instantiate (and so validate) the task named ``task["name"]``."""
    return get_task_class(task.get("name"))(task, unit, seed)


__all__ = ["TASKS", "TASK_NAMES", "ArithmeticModel", "Task", "build_task", "get_task_class"]
