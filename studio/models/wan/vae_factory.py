"""Build the Wan VAE a configuration describes: 2.1 (:class:`WanVAE21`) or 2.2 (:class:`WanVAE22`).

Its own module because the 2.2 VAE builds on the 2.1 module's classes: keeping the factory apart
leaves the two modules without an import cycle.
"""

from __future__ import annotations

from studio.models.wan.vae import CausalVideoVAE, WanVAE21, WanVAEConfig
from studio.models.wan.vae22 import WanVAE22


def build_vae(config: WanVAEConfig) -> CausalVideoVAE:
    """A :class:`WanVAE21` or :class:`WanVAE22` for ``config``.

    Parameters are created on the current default device (use ``torch.device("meta")`` to size a
    model without allocating it); the module is in eval mode with gradients off.
    """
    model: CausalVideoVAE = WanVAE22(config) if config.version == "2.2" else WanVAE21(config)
    return model.eval().requires_grad_(False)
