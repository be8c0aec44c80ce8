"""``nalu-predict CKPT "seven hundred and seventy seven"``: read number words with a num2words model
(``nalu_suite.predict``; ``--per-token`` shows the prediction after every word)."""

from __future__ import annotations

import sys

from nalu_suite.predict import main as predict_main


def main() -> None:
    sys.exit(predict_main())


if __name__ == "__main__":
    main()
