"""Grid-world time tracking (Trask et al. 2018, §4.5): environment in ``nalu_suite.envs``; here the
agents (``agents.py``), A2C (``a2c.py``), evaluation (``evaluate.py``), the figure,
the task and its LightningModule."""
