"""``python -m tests.service.tiny_studio ARGS``: the studio command line with the tiny test model.

``STUDIO_TEST_TINY_MODEL`` names the folder holding ``tiny_model.safetensors``; requests use the
model id :data:`tests.service.tiny_model.TINY_ID`. ``STUDIO_TEST_STEP_DELAY`` (seconds per
denoiser call) slows sampling down; ``STUDIO_TEST_THREADS`` sets torch's thread count, so results
match the parent test's bit for bit. Everything else is the real ``studio`` command.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from studio.cli import run_cli
from tests.service.tiny_model import TinyDenoiser, install


def main(argv: list[str]) -> int:
    torch.set_num_threads(int(os.environ.get("STUDIO_TEST_THREADS", "1")))
    TinyDenoiser.delay_s = float(os.environ.get("STUDIO_TEST_STEP_DELAY", "0"))
    install(Path(os.environ["STUDIO_TEST_TINY_MODEL"]))
    return run_cli(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
