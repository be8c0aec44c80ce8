"""``nalu-table --out DIR``: the static success table, every op x unit over R seeds
(``nalu_suite.replicas.table``; ``nalu-table --help`` lists the options).
``nalu-table paper-table1 --out DIR``: the NALU paper's Table 1 (``nalu_suite.replicas.paper_table``)."""

from __future__ import annotations

import sys

from nalu_suite.replicas import paper_table, table


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["paper-table1"]:
        return paper_table.main(argv[1:])
    return table.main(argv)


if __name__ == "__main__":
    main()
