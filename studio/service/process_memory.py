"""Process memory figures for the model manager and benchmarks (RAM, and VRAM on CUDA)."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True, slots=True)
class MemoryUsage:
    """Bytes in use now and at peak; VRAM figures are 0 without CUDA."""

    ram: int
    ram_peak: int
    vram: int = 0
    vram_peak: int = 0

    def describe(self) -> str:
        text = f"RAM {self.ram / 2**30:.2f} GiB (peak {self.ram_peak / 2**30:.2f})"
        if self.vram or self.vram_peak:
            text += f" · VRAM {self.vram / 2**30:.2f} GiB (peak {self.vram_peak / 2**30:.2f})"
        return text


def current_rss() -> int:
    """Resident set size of this process in bytes (Linux /proc; peak RSS elsewhere)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return peak_rss()


def peak_rss() -> int:
    """Peak resident set size in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def available_ram() -> int | None:
    """Bytes of RAM the system can give this process now (Linux ``MemAvailable``); None where
    it cannot be read."""
    meminfo = Path("/proc/meminfo")
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_usage() -> MemoryUsage:
    vram = vram_peak = 0
    if torch.cuda.is_available():
        vram = torch.cuda.memory_allocated()
        vram_peak = torch.cuda.max_memory_allocated()
    return MemoryUsage(current_rss(), peak_rss(), vram, vram_peak)
