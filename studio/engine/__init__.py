"""The model-agnostic generation engine: pure PyTorch, no Qt."""
