"""Many seeds in one run: ``nalu-train task=static_arith replicas=100`` (docs/replicas.md).

``settings`` checks the config, ``model`` stacks R models for ``torch.func.vmap``, ``data`` stacks
their batches (drawn in a worker process), ``engine`` steps and evaluates them, ``tracking`` keeps each
replica's ``solved_at`` and best checkpoint, ``fit`` drives the loop and writes the results, ``logging``
reports to the Lightning loggers, ``table`` runs the static success table (``nalu-table``).
"""

from nalu_suite.replicas.engine import ReplicaRun
from nalu_suite.replicas.fit import fit_lockstep, train_replicas
from nalu_suite.replicas.settings import ReplicaSettings, replica_settings

__all__ = ["ReplicaRun", "ReplicaSettings", "fit_lockstep", "replica_settings", "train_replicas"]
