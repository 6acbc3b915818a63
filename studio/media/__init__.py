"""Reading and writing images and videos; latent previews."""
