"""Flow Studio: a desktop studio for flow-matching (rectified-flow) video diffusion models."""

__version__ = "0.1.0"
