"""The shipped demo model: a small Wan-architecture model trained on procedural clips."""
