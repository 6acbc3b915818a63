"""What a measured forward time achieves against its FLOP count and the device's peak.

The FLOP counts themselves come from the model's family (a bench configuration's ``flops``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Throughput:
    """A measured forward time set against its FLOP count and a device's peak.

    Attributes:
        tflops: achieved TFLOP/s = FLOPs / seconds / 1e12.
        utilisation: achieved / peak (0…1), None without a peak.
        floor_s: the physical floor FLOPs / peak in seconds, None without a peak.
        times_floor: measured time / floor (≥ 1), None without a peak.
    """

    tflops: float
    utilisation: float | None
    floor_s: float | None
    times_floor: float | None


def throughput(flops: float, seconds: float, peak_tflops: float | None = None) -> Throughput:
    """Achieved TFLOP/s for ``flops`` done in ``seconds``, and the ratio to the floor at
    ``peak_tflops`` (e.g. 989 for an H100 SXM's dense bf16 tensor cores)."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    achieved = flops / seconds / 1e12
    if not peak_tflops:
        return Throughput(achieved, None, None, None)
    floor = flops / (peak_tflops * 1e12)
    return Throughput(achieved, achieved / peak_tflops, floor, seconds / floor)
