"""``tests/oracles/gpu_check.py``: its dry mode runs every section on the CPU and passes, a
perturbed device output fails the checks that judge it, and the budget, a crashing section and a
missing diffusers each end up in the table or the exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ORACLES = Path(__file__).resolve().parent / "oracles"
SCRIPT = ORACLES / "gpu_check.py"
sys.path.insert(0, str(ORACLES))

import gpu_check  # noqa: E402
from gpu_check_common import CPU, FAIL, PASS, SKIP, Context, Row  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the script's dry mode does
    yield
    torch.set_num_threads(threads)


def sections(*names: str) -> list[gpu_check.Section]:
    return [s for s in gpu_check.SECTIONS if s.name in names]


@pytest.mark.slow
def test_dry_run_has_every_section_and_passes(tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    out = tmp_path / "check.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert result["mode"] == "dry" and not result["failed"]
    assert list(dict.fromkeys(r["section"] for r in rows)) == [s.name for s in gpu_check.SECTIONS]
    assert {"correctness", "speed-dit", "speed-vae", "memory", "caching", "lora", "ltx-2b"} <= {
        r["section"] for r in rows}
    checks = [r["check"] for r in rows]
    for section in ("correctness", "speed-dit", "speed-vae", "memory", "ltx-2b"):  # LTX rows
        assert any(r["check"].startswith(("ltx ", "random LTX")) for r in rows
                   if r["section"] == section), (section, checks)
    assert {r["on"] for r in rows} == {"dry (CPU)"}
    assert all(r["verdict"] != SKIP for r in rows if "CUDA only" not in r["expectation"])
    assert sum(r["verdict"] == PASS for r in rows) >= 15
    for row in rows:  # one table, on stdout
        assert row["check"] in done.stdout and row["value"] in done.stdout
    assert "dry (CPU)" in done.stdout and "0 FAIL" in done.stdout


def test_a_perturbed_device_output_fails_the_checks_that_judge_it() -> None:
    ctx = Context(CPU, dry=True, perturb=0.05)  # 5 % off: every tolerance is tighter
    report = gpu_check.run_check(ctx, sections("correctness", "caching", "lora"))
    verdicts = {row.check: row.verdict for row in report.rows}
    judged = [c for c in verdicts if c.startswith(("demo:", "wan ", "open-sora ", "ltx "))]
    assert len(judged) == 40 and all(verdicts[c] == FAIL for c in judged), verdicts
    assert verdicts["families with a tiny set"] == PASS  # not a device output
    caching = {c.split(": ")[-1]: v for c, v in verdicts.items() if c.startswith("demo, 20")}
    assert caching["frame PSNR against no caching"] == FAIL
    assert caching["forwards run"] == PASS
    (lora,) = [c for c in verdicts if c.endswith("on the fly vs merged")]
    assert verdicts[lora] == FAIL
    assert report.failed and f" {FAIL} " in gpu_check.format_report(report)


def test_the_budget_stops_sections_from_starting() -> None:
    ctx = Context(CPU, dry=True, budget_s=1.0)  # less than any section needs
    report = gpu_check.run_check(ctx)
    assert [r.verdict for r in report.rows] == [SKIP] * len(gpu_check.SECTIONS)
    assert all("budget" in r.expectation for r in report.rows)
    assert not report.failed


def test_a_section_that_raises_is_a_failed_row_and_the_next_still_runs() -> None:
    def broken(ctx: Context) -> list[Row]:
        raise RuntimeError("no kernel image")

    def fine(ctx: Context) -> list[Row]:
        return [Row("something", "1", "= 1", PASS)]

    report = gpu_check.run_check(Context(CPU, dry=True),
                                 [gpu_check.Section("lora", broken, 0.0, 0.0),
                                  gpu_check.Section("next", fine, 0.0, 0.0)])  # fmt: skip
    assert [(r.section, r.verdict) for r in report.rows] == [("lora", FAIL), ("next", PASS)]
    assert "no kernel image" in report.rows[0].value


def test_without_diffusers_it_exits_3(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers → ImportError
    assert gpu_check.main(["--dry"]) == 3
    assert "diffusers is not installed" in capsys.readouterr().out
