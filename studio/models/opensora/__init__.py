"""Open-Sora 2.0: the MMDiT, the HunyuanVideo VAE, the text encoders and the family that loads
them (docs/families/opensora.md)."""
