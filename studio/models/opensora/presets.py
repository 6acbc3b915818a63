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
#: Latent → RGB preview: ComfyUI's HunyuanVideo factors (``comfy/latent_formats.py`` @
#: 9a9a69fd745d), made for latents scaled by 0.476986 — the normalised latents this VAE gives.
#: Their fit to Open-Sora 2.0's videos is not measured; they only drive live previews.
PREVIEW = PreviewFactors(
    rgb_factors=(
        (-0.0395, -0.0331, 0.0445), (0.0696, 0.0795, 0.0518), (0.0135, -0.0945, -0.0282),
        (0.0108, -0.0250, -0.0765), (-0.0209, 0.0032, 0.0224), (-0.0804, -0.0254, -0.0639),
        (-0.0991, 0.0271, -0.0669), (-0.0646, -0.0422, -0.0400), (-0.0696, -0.0595, -0.0894),
        (-0.0799, -0.0208, -0.0375), (0.1166, 0.1627, 0.0962), (0.1165, 0.0432, 0.0407),
        (-0.2315, -0.1920, -0.1355), (-0.0270, 0.0401, -0.0821), (-0.0616, -0.0997, -0.0727),
        (0.0249, -0.0469, -0.1703),
    ),
    bias=(0.0259, -0.0192, -0.0761),
)


#: Prompts in the style Open-Sora 2.0 does well: one scene, described in detail — subject and
#: action, setting, camera, light and style.
PROMPT_EXAMPLES = (
    "A golden retriever runs along a sandy beach at sunset, splashing through the shallow waves; "
    "the camera follows from the side in a smooth tracking shot, warm orange light, realistic",
    "Time-lapse of clouds rolling over snow-capped mountain peaks, their shadows sweeping across "
    "the valleys below while the sky turns from blue to deep purple as night falls",
    "A chef in a white apron tosses vegetables in a flaming wok in a busy restaurant kitchen, "
    "steam and sparks rising around him, close-up, dramatic side lighting",
    "A hot-air balloon rises slowly above a patchwork of green fields in the morning mist, seen "
    "from a second balloon drifting nearby, soft pastel colours",
)
