"""Run the diffusers comparison of the configuration's family in a child process:
``tests/oracles/compare_diffusers.py`` (Wan), ``compare_opensora.py`` or ``compare_ltx.py``.

The studio package never imports diffusers (it is a test and benchmark extra, and the layering
test forbids it under ``studio/``). The comparison script sits beside the package in a source
checkout; this module starts it with the same interpreter and options and reads the JSON it
prints. From an installed wheel (no ``tests/oracles/`` folder) or without diffusers it reports
why not.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studio.bench.options import BenchOptions

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).resolve().parents[2] / "tests" / "oracles" / "compare_diffusers.py"
#: The other families' scripts beside it, by configuration name prefix (Wan's names have none).
FAMILY_SCRIPTS = (("ltx-", "compare_ltx.py"), ("opensora-", "compare_opensora.py"))


def script_for(config: str) -> Path:
    """The comparison script that knows the configuration ``config``."""
    for prefix, name in FAMILY_SCRIPTS:
        if config.startswith(prefix):
            return SCRIPT.with_name(name)
    return SCRIPT


def comparison_command(options: BenchOptions, what: list[str]) -> list[str]:
    dtype = str(options.dtype).removeprefix("torch.")
    script, name = script_for(options.spec.name), options.spec.name
    command = [sys.executable, str(script), "--config", name, "--device", str(options.device),
               "--dtype", dtype, "--what", ",".join(what), "--repeat",
               str(options.repeat), "--warmup", str(options.warmup)]  # fmt: skip
    if options.threads:
        command += ["--threads", str(options.threads)]
    return command


def run_diffusers_comparison(options: BenchOptions, what: list[str]) -> dict[str, Any]:
    """The script's JSON result, or ``{"error": reason}``."""
    if not SCRIPT.is_file():
        return {"error": f"{SCRIPT} is missing (run from a source checkout)"}
    if not what:
        return {"error": "nothing to compare (use --what denoiser,vae)"}
    command = comparison_command(options, what)
    log.info("running %s", " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {}
    if done.returncode != 0 or not result:
        reason = result.get("error") or (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the diffusers comparison failed: {reason}"}
    return result
