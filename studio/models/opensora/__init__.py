"""Open-Sora 2.0 models (not wired into a family yet)."""
