"""One check of the studio on a CUDA device, with one table: correctness, speed, memory, caching
and LoRAs.

Run it on a machine with a GPU (about 8 minutes on an H100 with the default budget)::

    python tests/oracles/gpu_check.py [--budget-s 480] [--json OUT] [--sections a,b]

1. correctness: every family's tiny set, device float32 (TF32 off) and bfloat16 against CPU
   float32: a denoiser call, a VAE decode and a whole generation (frame PSNR);
2. speed-dit, speed-vae: our Wan DiT forward and VAE decode against diffusers'
   (``compare_diffusers.py``) on the same weights and device, interleaved, at the largest bench
   size the budget allows;
3. memory: a generation's peak device memory against the memory forecast;
4. caching: the demo model with and without step caching (forwards, speed-up, PSNR);
5. lora: a LoRA merged against on the fly on the device, their cost per call, and the passes a
   distillation LoRA's few-step settings save (``gpu_check_lora.py``);
6. ltx-2b: the LTX-Video 2B at 768×512×121, 40 steps, against diffusers' ``LTXPipeline`` on
   the same weights (``gpu_check_ltx.py``, which also gives sections 2 and 3 their LTX rows).

Each section is one function ``Context → list[Row]`` listed in :data:`SECTIONS`. Without a
GPU, or with ``--dry``, every section runs on the CPU at the smallest sizes (bf16 included,
the diffusers comparison on the ``tiny`` size) and its rows say "dry (CPU)"; timings are then
recorded, not judged. ``--budget-s`` (counted from the start
of the process) is checked before each section: one that would not fit is not started.
Exit status: 0 when no row fails, 1 when one does, 3 without diffusers (as compare_diffusers).
The table is the script's report, printed to stdout (the studio's own code logs instead).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()  # the budget counts the imports and the CUDA start-up too
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for _path in (ROOT, HERE):  # the studio and the sibling oracle modules, however it is started
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import torch  # noqa: E402
from compare_diffusers import MISSING_DIFFUSERS  # noqa: E402
from gpu_check_common import FAIL, SKIP, Context, Row, free_device  # noqa: E402
from gpu_check_correctness import correctness  # noqa: E402
from gpu_check_lora import lora  # noqa: E402
from gpu_check_ltx import PIPELINE_S, ltx_pipeline  # noqa: E402
from gpu_check_measures import (  # noqa: E402
    DIT_SIZES,
    MEMORY_SIZES,
    VAE_SIZES,
    caching,
    memory,
    speed_dit,
    speed_vae,
)

from studio.bench.report import write_json  # noqa: E402


@dataclass(frozen=True, slots=True)
class Section:
    """A part of the check: ``run(context)`` gives its rows. ``least_s``: the seconds it takes
    at its smallest size (it is not started with less left); ``reserve_s``: the seconds the
    sections before it leave for it, its preferred size's. Both are H100 estimates until a GPU
    run measures them (the table's last line gives each section's time)."""

    name: str
    run: Callable[[Context], list[Row]]
    least_s: float
    reserve_s: float


def sized(name: str, run: Callable[[Context], list[Row]], sizes: Sequence[tuple[str, float]],
          preferred: str) -> Section:
    """A section that picks its size from ``sizes`` (largest first, estimated seconds)."""
    return Section(name, run, sizes[-1][1], dict(sizes)[preferred])


#: The sections, in order. A new one is a function ``Context → list[Row]`` and one more entry.
SECTIONS: tuple[Section, ...] = (
    Section("correctness", correctness, 60.0, 60.0),
    sized("speed-dit", speed_dit, DIT_SIZES, "wan21-1.3b"),
    sized("speed-vae", speed_vae, VAE_SIZES, "wan21-1.3b"),
    sized("memory", memory, MEMORY_SIZES, "wan21-1.3b"),
    Section("caching", caching, 20.0, 20.0),
    Section("lora", lora, 15.0, 15.0),
    Section("ltx-2b", ltx_pipeline, PIPELINE_S, PIPELINE_S),
)


@dataclass(frozen=True, slots=True)
class Report:
    """The rows of a run, the seconds each section took and what the run was on."""

    rows: list[Row]
    section_s: dict[str, float]
    header: str
    elapsed_s: float

    @property
    def failed(self) -> bool:
        return any(row.verdict == FAIL for row in self.rows)


def run_section(ctx: Context, section: Section, later_s: float) -> list[Row]:
    """The section's rows; a SKIP row when it would overrun the budget, a FAIL row (and the
    traceback on stderr) when it raises, so that the other sections still run."""
    if ctx.elapsed_s() + section.least_s > ctx.budget_s:
        return [Row("not started", f"{ctx.elapsed_s():.0f} s used",
                    f"needs ~{section.least_s:.0f} s within the {ctx.budget_s:.0f} s budget",
                    SKIP)]  # fmt: skip
    ctx.reserve_s = later_s  # a size picked inside leaves the later sections their time
    try:
        return section.run(ctx)
    except Exception as exc:  # noqa: BLE001 - a broken section is a failed row, not a crash
        traceback.print_exc()
        return [Row("runs to the end", f"{type(exc).__name__}: {exc}"[:120],
                    "no error", FAIL)]  # fmt: skip
    finally:
        free_device(ctx.device)


def run_check(ctx: Context, sections: Sequence[Section] = SECTIONS) -> Report:
    """Run ``sections`` in order under ``ctx``'s budget."""
    where = "dry (CPU)" if ctx.dry else "CUDA"
    rows: list[Row] = []
    section_s: dict[str, float] = {}
    for n, section in enumerate(sections):
        started = time.perf_counter()
        later = sum(s.reserve_s for s in sections[n + 1:])
        rows += [replace(row, section=section.name, on=where)
                 for row in run_section(ctx, section, later)]
        section_s[section.name] = time.perf_counter() - started
    return Report(rows, section_s, describe(ctx), ctx.elapsed_s())


def describe(ctx: Context) -> str:
    device = "CPU (dry run)" if ctx.dry else torch.cuda.get_device_name(ctx.device)
    return (f"GPU check on {device}: torch {torch.__version__}, Python "
            f"{platform.python_version()}, budget {ctx.budget_s:.0f} s")  # fmt: skip


COLUMNS = ("section", "check", "value", "expectation", "verdict", "on")


def format_report(report: Report) -> str:
    """The one table: a header line, aligned columns, then counts and times."""
    cells = [COLUMNS] + [tuple(getattr(row, c) for c in COLUMNS) for row in report.rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [report.header, ""]
    for n, line in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    counts = {v: sum(r.verdict == v for r in report.rows) for v in ("PASS", FAIL, "INFO", SKIP)}
    times = ", ".join(f"{name} {s:.1f} s" for name, s in report.section_s.items())
    lines += ["", ", ".join(f"{n} {v}" for v, n in counts.items()),
              f"{report.elapsed_s:.1f} s in all: {times}"]  # fmt: skip
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="run on the CPU at the smallest sizes")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="seconds the check may take; later sections are skipped")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--sections", default=",".join(s.name for s in SECTIONS),
                        help="comma-separated section names (default: all)")  # fmt: skip
    return parser.parse_args(argv)


def chosen(names: str) -> list[Section]:
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    unknown = set(wanted) - {s.name for s in SECTIONS}
    if unknown:
        raise SystemExit(f"unknown sections: {', '.join(sorted(unknown))}")
    return [s for s in SECTIONS if s.name in wanted]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sections = chosen(args.sections)
    try:
        import diffusers
    except ImportError as exc:
        print(f"diffusers is not installed ({exc}): pip install -e '.[test]'")
        return MISSING_DIFFUSERS
    dry = args.dry or not torch.cuda.is_available()
    if dry:  # tiny sizes gain nothing from threads, and on a shared CPU (CI) the threads of
        torch.set_num_threads(1)  # each small op wait for each other: 88 s instead of 8 s here
    ctx = Context(torch.device("cpu" if dry else "cuda"), dry, args.budget_s, started=STARTED)
    report = run_check(ctx, sections)
    report = replace(report, header=f"{report.header}, diffusers {diffusers.__version__}")
    print(format_report(report))
    if args.json:
        write_json(args.json, to_json(report, dry))
    return 1 if report.failed else 0


def to_json(report: Report, dry: bool) -> dict[str, Any]:
    return {"mode": "dry" if dry else "cuda", "header": report.header,
            "elapsed_s": report.elapsed_s, "section_s": report.section_s,
            "failed": report.failed, "rows": [asdict(row) for row in report.rows]}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
