"""The command lines: one module per console script (``nalu-train``, ``nalu-eval``, ``nalu-predict``,
``nalu-report``, ``nalu-preview``, ``nalu-table``), each a ``main()``. Nothing in the package imports them."""
