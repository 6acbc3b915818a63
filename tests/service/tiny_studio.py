"""``python -m tests.service.tiny_studio ARGS``: the studio command line with the tiny test model.

``STUDIO_TEST_TINY_MODEL`` names the folder holding ``tiny_model.safetensors``; requests use the
model id :data:`tests.service.tiny_model.TINY_ID`. Everything else is the real ``studio`` command.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from studio.cli import run_cli
from tests.service.tiny_model import install


def main(argv: list[str]) -> int:
    install(Path(os.environ["STUDIO_TEST_TINY_MODEL"]))
    return run_cli(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
