"""``nalu-table --out DIR``: the static success table, every op x unit over R seeds
(``nalu_suite.replicas.table``; ``nalu-table --help`` lists the options)."""

from __future__ import annotations

from nalu_suite.replicas.table import main

if __name__ == "__main__":
    main()
