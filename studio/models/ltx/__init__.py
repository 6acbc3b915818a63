"""LTX-Video: transformer, causal video VAE, T5-XXL text encoder and the family that loads them
(docs/families/ltx.md)."""
