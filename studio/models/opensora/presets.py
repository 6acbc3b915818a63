"""Open-Sora 2.0's defaults, sizes and latent geometry (docs/families/opensora.md §4).

Values from hpcaitech/Open-Sora @ 7ad6a96a135f ``configs/diffusion/inference/256px.py`` and
``768px.py``: 50 steps, text guidance 7.5, image guidance 3.0, all three guidance oscillations,
129 frames at 24 fps, the resolution-dependent shift; sizes are the "256px" and "768px"
areas (``opensora/datasets/aspect.py``) snapped to multiples of 16 pixels.
"""

from __future__ import annotations

from studio.engine.model import FamilyDefaults, PreviewFactors
from studio.engine.shapes import LatentGeometry

VARIANT = "open-sora-2.0"
TITLE = "Open-Sora 2.0"
#: 16 latent channels, 4× time, 8× space; the MMDiT packs 2×2 latent cells into one token.
GEOMETRY = LatentGeometry(16, 4, 8, (1, 2, 2))
#: (width, height): 256px 16:9, 9:16, 1:1, then 768px 16:9, 9:16, 1:1.
SIZES_256 = ((336, 192), (192, 336), (256, 256))
SIZES_768 = ((1024, 576), (576, 1024), (768, 768))
MAX_FRAMES = 129
#: What the original appends to a prompt ending in "." (``prompt_with_suffix``): the engine
#: concatenates it to the prompt as given (docs/families/opensora.md §3).
PROMPT_SUFFIX = " 24 FPS. 4 motion score."
DEFAULTS = FamilyDefaults(
    steps=50, guidance=7.5, shift="auto", fps=24.0, frames=MAX_FRAMES,
    sizes=SIZES_256 + SIZES_768, negative_prompt="", guidance_image=3.0,
    oscillation=("text", "image", "temporal"), prompt_suffix=PROMPT_SUFFIX,
)  # fmt: skip
#: No fitted latent → RGB map is published for the HunyuanVideo VAE; a neutral grey-ish map
#: from the first three channels keeps previews moving.
PREVIEW = PreviewFactors(
    rgb_factors=((0.3, 0.0, 0.0), (0.0, 0.3, 0.0), (0.0, 0.0, 0.3)) + ((0.0, 0.0, 0.0),) * 13,
    bias=(0.0, 0.0, 0.0),
)
