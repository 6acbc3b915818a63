"""Model architectures, checkpoint I/O and the model families the studio can run."""
