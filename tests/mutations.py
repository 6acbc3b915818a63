"""Re-run the mutation check of docs/testing.md: introduce each bug, run the tests that must catch
it, restore the file, and print the table.

    .venv/bin/python tests/mutations.py            # all mutations (a few minutes on 2 cores)
    .venv/bin/python tests/mutations.py 3 7        # only mutations 3 and 7

Each mutation replaces one exact piece of product code; a mutation whose text is no longer in
the file is reported as "stale" (the code moved: update this table). Not collected by pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation("the TI2V model gets the uniform-timestep denoiser call",
             "studio/models/wan/loader.py",
             "denoiser=dit.velocity if variant.supports_image else dit.velocity_uniform",
             "denoiser=dit.velocity_uniform",
             ("tests/models/test_wiring.py", "tests/models/test_wan_family.py")),
    Mutation("the demo model's denoiser made uniform-timestep", "studio/models/demo/loader.py",
             "denoiser=_denormals_flushed(dit.velocity) if",
             "denoiser=_denormals_flushed(dit.velocity_uniform) if",
             ("tests/models/test_wiring.py", "tests/models/test_demo_model.py")),
    Mutation("the preview canvas draws nothing", "studio/app/frame_canvas.py",
             "painter.drawPixmap(target, self._pixmap, QRectF(self._pixmap.rect()))", "pass",
             ("tests/app/test_pixels.py",)),
    Mutation("the player stays on frame 0", "studio/app/player.py",
             "self.canvas.set_image(self._video.images[index])",
             "self.canvas.set_image(self._video.images[0])", ("tests/app/test_pixels.py",)),
    Mutation("the live preview freezes at step 1", "studio/app/preview_view.py",
             "self._images = list(images)", "self._images = self._images or list(images)",
             ("tests/app/test_pixels.py",)),
    Mutation("previews built from the noisy x instead of x̂₀", "studio/service/generation.py",
             "previews.submit(done, info.x0_hat[0])", "previews.submit(done, info.x[0])",
             ("tests/app/test_pixels.py",)),
    Mutation("atomic writes: fsync removed", "studio/media/atomic.py",
             "    try:\n        os.fsync(fd)\n    finally:\n        os.close(fd)",
             "    os.close(fd)", ("tests/media/test_atomic.py",)),
    Mutation("atomic writes: copy + unlink instead of os.replace", "studio/media/atomic.py",
             "        os.replace(tmp, target)",
             "        target.write_bytes(tmp.read_bytes())\n        tmp.unlink()",
             ("tests/media/test_atomic.py",)),
    Mutation("MP4 metadata read from ©too instead of ©cmt", "studio/media/mp4.py",
             'b"ilst", b"\\xa9cmt", b"data"', 'b"ilst", b"\\xa9too", b"data"',
             ("tests/media/test_mp4.py",)),
    Mutation("the controller gives the worker a fresh CancelToken", "studio/app/controller.py",
             "WorkItem(job.id, job.request, self._running.cancel)",
             "WorkItem(job.id, job.request, CancelToken())",
             ("tests/app/test_generate.py",)),
    Mutation("the bench's paired ratio taken from the medians", "studio/bench/timing.py",
             "ratios = sorted(a / b for a, b in zip(ours.samples, theirs.samples, strict=True))",
             "ratios = [ours.median / theirs.median]", ("tests/test_bench.py",)),
)


def run(mutation: Mutation) -> str:
    """"caught by <tests>", "NOT caught" or "stale"."""
    path = ROOT / mutation.path
    source = path.read_text(encoding="utf-8")
    if source.count(mutation.old) != 1:
        return "stale"
    path.write_text(source.replace(mutation.old, mutation.new), encoding="utf-8")
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                               "no:cacheprovider", *mutation.tests], cwd=ROOT,
                              capture_output=True, text=True, timeout=900,
                              env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})  # fmt: skip
    finally:
        path.write_text(source, encoding="utf-8")
    if done.returncode == 0:
        return "NOT caught"
    failed = [line.split(" ")[1] for line in done.stdout.splitlines()
              if line.startswith(("FAILED", "ERROR"))]  # fmt: skip
    return "caught by " + (", ".join(failed) or f"exit {done.returncode}")


def main(argv: list[str]) -> int:
    chosen = [int(a) for a in argv] or range(1, len(MUTATIONS) + 1)
    missed = 0
    for number in chosen:
        mutation = MUTATIONS[number - 1]
        verdict = run(mutation)
        missed += not verdict.startswith("caught")
        print(f"| {number} | {mutation.what} | {verdict} |", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
