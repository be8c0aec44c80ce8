"""The field's later benchmarks, one command each (``nalu-bench``; docs/benchmarks.md).

``smat``: the Primer's single module arithmetic task (every module x 9 ranges x 25 seeds of one op, and the
Division paper's input-redundancy variant); ``ten_param``: the NAU paper's 10-parameter task. Both train on
the replica engine (``replicas.table.train_cells``) and write ``table.md``, a CSV and a figure.
"""
