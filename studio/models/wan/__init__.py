"""Wan 2.1 / Wan 2.2 TI2V: DiT, VAEs, UMT5 text encoder and the family adapter."""
