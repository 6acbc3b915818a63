"""What the studio knows about each Wan release: variants, defaults, preview factors.

Numbers come from docs/families/wan.md: defaults and the default negative prompt §7 (the
original ``generate.py`` / ``shared_config.py``), the latent → RGB preview factors §9
(ComfyUI's ``Wan21`` and ``Wan22`` latent formats, applied to the normalised latent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from studio.engine.model import FIRST_FRAME, KEYFRAME, FamilyDefaults, PreviewFactors
from studio.engine.shapes import LatentGeometry

#: ``sample_neg_prompt`` of the original repositories, used when the user gives no negative.
NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，"
    "低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，"
    "毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)

# fmt: off
WAN21_PREVIEW = PreviewFactors(
    rgb_factors=(
        (-0.1299, -0.1692, 0.2932), (0.0671, 0.0406, 0.0442), (0.3568, 0.2548, 0.1747),
        (0.0372, 0.2344, 0.1420), (0.0313, 0.0189, -0.0328), (0.0296, -0.0956, -0.0665),
        (-0.3477, -0.4059, -0.2925), (0.0166, 0.1902, 0.1975), (-0.0412, 0.0267, -0.1364),
        (-0.1293, 0.0740, 0.1636), (0.0680, 0.3019, 0.1128), (0.0032, 0.0581, 0.0639),
        (-0.1251, 0.0927, 0.1699), (0.0060, -0.0633, 0.0005), (0.3477, 0.2275, 0.2950),
        (0.1984, 0.0913, 0.1861),
    ),
    bias=(-0.1835, -0.0868, -0.3360),
)

WAN22_PREVIEW = PreviewFactors(
    rgb_factors=(
        (0.0119, 0.0103, 0.0046), (-0.1062, -0.0504, 0.0165), (0.0140, 0.0409, 0.0491),
        (-0.0813, -0.0677, 0.0607), (0.0656, 0.0851, 0.0808), (0.0264, 0.0463, 0.0912),
        (0.0295, 0.0326, 0.0590), (-0.0244, -0.0270, 0.0025), (0.0443, -0.0102, 0.0288),
        (-0.0465, -0.0090, -0.0205), (0.0359, 0.0236, 0.0082), (-0.0776, 0.0854, 0.1048),
        (0.0564, 0.0264, 0.0561), (0.0006, 0.0594, 0.0418), (-0.0319, -0.0542, -0.0637),
        (-0.0268, 0.0024, 0.0260), (0.0539, 0.0265, 0.0358), (-0.0359, -0.0312, -0.0287),
        (-0.0285, -0.1032, -0.1237), (0.1041, 0.0537, 0.0622), (-0.0086, -0.0374, -0.0051),
        (0.0390, 0.0670, 0.2863), (0.0069, 0.0144, 0.0082), (0.0006, -0.0167, 0.0079),
        (0.0313, -0.0574, -0.0232), (-0.1454, -0.0902, -0.0481), (0.0714, 0.0827, 0.0447),
        (-0.0304, -0.0574, -0.0196), (0.0401, 0.0384, 0.0204), (-0.0758, -0.0297, -0.0014),
        (0.0568, 0.1307, 0.1372), (-0.0055, -0.0310, -0.0380), (0.0239, -0.0305, 0.0325),
        (-0.0663, -0.0673, -0.0140), (-0.0416, -0.0047, -0.0023), (0.0166, 0.0112, -0.0093),
        (-0.0211, 0.0011, 0.0331), (0.1833, 0.1466, 0.2250), (-0.0368, 0.0370, 0.0295),
        (-0.3441, -0.3543, -0.2008), (-0.0479, -0.0489, -0.0420), (-0.0660, -0.0153, 0.0800),
        (-0.0101, 0.0068, 0.0156), (-0.0690, -0.0452, -0.0927), (-0.0145, 0.0041, 0.0015),
        (0.0421, 0.0451, 0.0373), (0.0504, -0.0483, -0.0356), (-0.0837, 0.0168, 0.0055),
    ),
    bias=(0.0317, -0.0878, -0.1388),
)
# fmt: on

_T2V_DEFAULTS = dict(steps=50, guidance=5.0, shift=5.0, fps=16.0, frames=81,
                     negative_prompt=NEGATIVE_PROMPT)  # fmt: skip
T2V_1_3B_DEFAULTS = FamilyDefaults(sizes=((832, 480), (480, 832)), **_T2V_DEFAULTS)
T2V_14B_DEFAULTS = FamilyDefaults(
    sizes=((1280, 720), (720, 1280), (832, 480), (480, 832)), **_T2V_DEFAULTS
)
TI2V_5B_DEFAULTS = FamilyDefaults(
    steps=50, guidance=5.0, shift=5.0, fps=24.0, frames=121,
    sizes=((1280, 704), (704, 1280)), negative_prompt=NEGATIVE_PROMPT,
)  # fmt: skip

# Wan 2.2 A14B (docs/families/wan.md §13): the high-noise expert's guidance is ``guidance``.
_A14B_SIZES = T2V_14B_DEFAULTS.sizes
T2V_A14B_DEFAULTS = FamilyDefaults(steps=40, guidance=4.0, guidance_low=3.0, shift=12.0,
                                   fps=16.0, frames=81, sizes=_A14B_SIZES,
                                   negative_prompt=NEGATIVE_PROMPT)  # fmt: skip
I2V_A14B_DEFAULTS = FamilyDefaults(steps=40, guidance=3.5, guidance_low=3.5, shift=5.0,
                                   fps=16.0, frames=81, sizes=_A14B_SIZES,
                                   negative_prompt=NEGATIVE_PROMPT)  # fmt: skip

# Wan 2.1 I2V-14B (480P, 720P) and FLF2V-14B (docs/families/wan.md §7, §15): the negative
# prompt gains the originals' "camera shake" (and for FLF2V "shot change") terms.
_I2V_NEGATIVE = "镜头晃动，" + NEGATIVE_PROMPT
I2V_480P_DEFAULTS = FamilyDefaults(steps=40, guidance=5.0, shift=3.0, fps=16.0, frames=81,
                                   sizes=((832, 480), (480, 832)), negative_prompt=_I2V_NEGATIVE)
I2V_720P_DEFAULTS = FamilyDefaults(steps=40, guidance=5.0, shift=5.0, fps=16.0, frames=81,
                                   sizes=((1280, 720), (720, 1280)),
                                   negative_prompt=_I2V_NEGATIVE)  # fmt: skip
FLF2V_DEFAULTS = FamilyDefaults(steps=50, guidance=5.0, shift=16.0, fps=16.0, frames=81,
                                sizes=((1280, 720), (720, 1280)),
                                negative_prompt="镜头切换，" + _I2V_NEGATIVE)  # fmt: skip

WAN21_GEOMETRY = LatentGeometry(channels=16, temporal_factor=4, spatial_factor=8)
WAN22_GEOMETRY = LatentGeometry(channels=48, temporal_factor=4, spatial_factor=16)


@dataclass(frozen=True, slots=True)
class WanVariant:
    """One Wan release (or a non-standard size of one), as the registry names it.

    Attributes:
        name: registry variant ("t2v-1.3b", "t2v-14b", "ti2v-5b", "t2v-custom", …).
        title: human-readable name.
        latent_channels: DiT in/out channels = the paired VAE's latent channels.
        vae_version: "2.1" or "2.2" — the VAE it needs.
        vae_file: the published VAE file name, for hints.
        defaults / preview / geometry: what :class:`~studio.engine.model.LoadedModel` carries.
        supports_image: first-frame conditioning through the engine's mask (TI2V only).
        boundary: t where a two-expert release (A14B) switches from its high-noise to its
            low-noise DiT (0: one DiT).
        image_channels: the reference image enters as extra DiT input channels (I2V: 16 noise
            + 4 mask + 16 image-latent channels).
        clip: the DiT also reads CLIP features of the reference image(s) (Wan 2.1 I2V/FLF2V).
        last_frame: the last frame takes a reference image too (FLF2V).
    """

    name: str
    title: str
    latent_channels: int
    vae_version: str
    vae_file: str
    defaults: FamilyDefaults
    preview: PreviewFactors
    geometry: LatentGeometry
    supports_image: bool = False
    boundary: float = 0.0
    image_channels: bool = False
    clip: bool = False
    last_frame: bool = False

    @property
    def conditioning(self) -> tuple[str, ...]:
        """The engine's conditioning modes this release supports (TI2V: first frame and
        keyframes through the per-token mask; I2V: the first frame as input channels, FLF2V
        also the last; T2V: none)."""
        if self.image_channels:
            return (FIRST_FRAME, KEYFRAME) if self.last_frame else (FIRST_FRAME,)
        return (FIRST_FRAME, KEYFRAME) if self.supports_image else ()

    @property
    def experts(self) -> bool:
        return self.boundary > 0.0


_WAN21 = dict(latent_channels=16, vae_version="2.1", vae_file="Wan2.1_VAE.pth",
              preview=WAN21_PREVIEW, geometry=WAN21_GEOMETRY)  # fmt: skip
_WAN22 = dict(latent_channels=48, vae_version="2.2", vae_file="Wan2.2_VAE.pth",
              preview=WAN22_PREVIEW, geometry=WAN22_GEOMETRY, supports_image=True)  # fmt: skip

T2V_1_3B = WanVariant("t2v-1.3b", "Wan 2.1 T2V 1.3B", defaults=T2V_1_3B_DEFAULTS, **_WAN21)
T2V_14B = WanVariant("t2v-14b", "Wan 2.1 T2V 14B", defaults=T2V_14B_DEFAULTS, **_WAN21)
TI2V_5B = WanVariant("ti2v-5b", "Wan 2.2 TI2V 5B", defaults=TI2V_5B_DEFAULTS, **_WAN22)
T2V_CUSTOM = WanVariant("t2v-custom", "Wan 2.1 T2V (non-standard size)",
                        defaults=T2V_1_3B_DEFAULTS, **_WAN21)  # fmt: skip
TI2V_CUSTOM = WanVariant("ti2v-custom", "Wan 2.2 TI2V (non-standard size)",
                         defaults=TI2V_5B_DEFAULTS, **_WAN22)  # fmt: skip
_CLIP = dict(image_channels=True, clip=True)
I2V_14B_480P = WanVariant("i2v-14b-480p", "Wan 2.1 I2V 14B 480P", defaults=I2V_480P_DEFAULTS,
                          **_CLIP, **_WAN21)  # fmt: skip
I2V_14B_720P = WanVariant("i2v-14b-720p", "Wan 2.1 I2V 14B 720P", defaults=I2V_720P_DEFAULTS,
                          **_CLIP, **_WAN21)  # fmt: skip
FLF2V_14B = WanVariant("flf2v-14b", "Wan 2.1 FLF2V 14B", defaults=FLF2V_DEFAULTS,
                       last_frame=True, **_CLIP, **_WAN21)  # fmt: skip
T2V_A14B = WanVariant("t2v-a14b", "Wan 2.2 T2V A14B", defaults=T2V_A14B_DEFAULTS,
                      boundary=0.875, **_WAN21)  # fmt: skip
I2V_A14B = WanVariant("i2v-a14b", "Wan 2.2 I2V A14B", defaults=I2V_A14B_DEFAULTS,
                      boundary=0.900, image_channels=True, **_WAN21)  # fmt: skip
#: A two-expert release by its experts' single-DiT variant.
EXPERT_RELEASES = {"t2v-14b": T2V_A14B, "t2v-custom": T2V_A14B, "i2v-a14b": I2V_A14B}

#: (in_dim, dim, num_layers) of each published text-to-video DiT → its variant.
_PUBLISHED = {(16, 1536, 30): T2V_1_3B, (16, 5120, 40): T2V_14B, (48, 3072, 30): TI2V_5B}

VARIANTS: Mapping[str, WanVariant] = {
    v.name: v for v in (T2V_1_3B, T2V_14B, TI2V_5B, T2V_CUSTOM, TI2V_CUSTOM, T2V_A14B, I2V_A14B,
                        I2V_14B_480P, I2V_14B_720P, FLF2V_14B)
}


def variant_for(in_dim: int, dim: int, num_layers: int, image_branch: str | bool,
                name: str = "") -> WanVariant | None:
    """The variant of a DiT with these sizes, or None for channel counts no Wan VAE produces.

    Sizes other than the published ones with 16 or 48 channels are "custom" variants (the test
    models, pruned or distilled checkpoints): same VAE, defaults and previews as their release.
    ``image_branch`` is "flf2v" (a CLIP branch with FLF2V's position table), "i2v"/True (a
    CLIP branch) or ""/False; the 480P and 720P I2V releases share their shapes, so ``name``
    (the file's folder and name) tells them apart, 720P when it does not say "480p".
    """
    if image_branch == "flf2v":
        return FLF2V_14B
    if image_branch:
        return I2V_14B_480P if "480p" in name.lower() else I2V_14B_720P
    if in_dim == 36:  # 16 noise + 4 mask + 16 image channels, no CLIP branch: an I2V expert
        return I2V_A14B
    published = _PUBLISHED.get((in_dim, dim, num_layers))
    if published is not None:
        return published
    return {16: T2V_CUSTOM, 48: TI2V_CUSTOM}.get(in_dim)


#: VAE latent channels → (registry variant, version).
VAE_VARIANTS = {16: ("wan2.1-vae", "2.1"), 48: ("wan2.2-vae", "2.2")}

#: The UMT5-XXL encoder's sizes (docs/families/wan.md §4).
UMT5_XXL_SIZES = {"vocab_size": 256384, "d_model": 4096, "d_ff": 10240, "num_layers": 24,
                  "num_heads": 64}  # fmt: skip

#: Prompts of the kind Wan does well, offered in the prompt panel's Examples menu.
PROMPT_EXAMPLES = (
    "A red fox trots through fresh snow in a birch forest at dawn, soft golden light, the camera "
    "tracking beside it at ground level, cinematic, shallow depth of field",
    "Close-up of a barista pouring steamed milk into an espresso cup, a leaf pattern forming on "
    "the surface, warm café light, slow motion",
    "Aerial shot gliding along a rocky coastline as waves break against the cliffs, turquoise "
    "water, bright midday sun, realistic",
    "A rainy city street at night, neon signs reflected in the puddles, a woman in a yellow "
    "raincoat walking towards the camera, handheld shot, film grain",
    "A paper boat drifting down a narrow stream in a spring garden, petals floating beside it, "
    "macro lens, gentle breeze",
)
