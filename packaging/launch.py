"""Entry script for the frozen build: the same ``main`` as the ``studio`` console script."""

from __future__ import annotations

import sys

from studio.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
