"""LTX-Video's presets, latent geometry and preview factors (docs/families/ltx.md §4).

Values from Lightricks/LTX-Video ``configs/*.yaml`` and ``ltx_video/inference.py``: the 2B dev
checkpoints (0.9 … 0.9.6-dev) run 40 steps at guidance 3 with STG 1 on block 19
(``attention_values``) and rescaling 0.7; the 0.9.6 distilled model 8 steps at guidance 1 without
STG; the 0.9.8 distilled models their first-pass timestep list at guidance 1 without STG; every
config decodes at timestep 0.05 with noise 0.025. ``inference.py``: 121 frames at 30 fps, the
negative prompt below, ``image_cond_noise_scale`` 0.15. The 13B dev configs vary guidance, STG,
rescaling and skipped blocks over seven time ranges with CFG-star rescaling, 30 steps
(:data:`DEV_13B_RANGES`; the request's guidance 8 and STG 4 are those ranges' peaks).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from studio.engine.model import FamilyDefaults, PreviewFactors
from studio.engine.rf_schedule import SIMPLE_DIFFUSION_BASE, rf_schedule, token_count_shift
from studio.engine.shapes import LatentGeometry
from studio.errors import CheckpointError
from studio.models.ltx.guidance_ranges import GuidanceSchedule, schedule_from_lists

TITLE = "LTX-Video"
#: 128 latent channels, 8× time, 32× space, patch 1 (one token per latent cell).
GEOMETRY = LatentGeometry(128, 8, 32, (1, 1, 1))
#: (width, height), multiples of 32: the 768×512 the README recommends first, then 1216×704
#: (``inference.py``'s default) and their portrait forms.
SIZES = ((768, 512), (512, 768), (1216, 704), (704, 1216), (960, 544), (544, 960))
FRAMES, FPS = 121, 30.0
NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"
#: ``image_cond_noise_scale`` of ``inference.py``.
REFERENCE_NOISE = 0.15
#: The first-pass timesteps of the 0.9.8 distilled configs (without the final 0).
DISTILLED_098 = (1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725)
STG_MODES = ("attention_values", "attention_skip", "residual", "transformer_block")


@dataclass(frozen=True, slots=True)
class Preset:
    """One checkpoint's sampling settings.

    Attributes:
        steps, guidance, stg, rescale: as the config gives them (guidance 1 = no CFG pass,
            stg 0 = no perturbed pass, rescale 1 = no rescaling).
        skip_blocks: the transformer blocks perturbed in the STG pass.
        stg_mode: how those blocks are perturbed (one of :data:`STG_MODES`).
        timesteps: an explicit schedule without the final 0 (None: the checkpoint's scheduler).
        decode_timestep / decode_noise_scale: the timestep-conditioned decoder's inputs.
        stochastic: the config samples stochastically.
        ranges: guidance settings that change along the run (13B dev; None: fixed).
    """

    steps: int
    guidance: float
    stg: float
    rescale: float
    skip_blocks: tuple[int, ...]
    stg_mode: str = "attention_values"
    timesteps: tuple[float, ...] | None = None
    decode_timestep: float = 0.05
    decode_noise_scale: float = 0.025
    stochastic: bool = False
    ranges: GuidanceSchedule | None = None


#: The 13B dev configuration's first pass (``configs/ltxv-13b-0.9.8-dev.yaml``).
DEV_13B_RANGES = schedule_from_lists(
    starts=[1.0, 0.996, 0.9933, 0.9850, 0.9767, 0.9008, 0.6180],
    guidance=[1, 1, 6, 8, 6, 1, 1], stg=[0, 0, 4, 4, 4, 2, 1],
    rescale=[1, 1, 0.5, 0.5, 1, 1, 1],
    blocks=[[], [11, 25, 35, 39], [22, 35, 39], [28], [28], [28], [28]], cfg_star=True,
)  # fmt: skip

DEV_2B = Preset(steps=40, guidance=3.0, stg=1.0, rescale=0.7, skip_blocks=(19,))
DEV_13B = Preset(steps=30, guidance=8.0, stg=4.0, rescale=1.0, skip_blocks=(28,),
                 ranges=DEV_13B_RANGES)
DISTILLED_096 = Preset(steps=8, guidance=1.0, stg=0.0, rescale=1.0, skip_blocks=(),
                       stochastic=True)
DISTILLED_098_PRESET = Preset(steps=len(DISTILLED_098), guidance=1.0, stg=0.0, rescale=1.0,
                              skip_blocks=(42,), timesteps=DISTILLED_098)


def preset_for(variant: str) -> Preset:
    """The preset of a variant name ("2b-0.9.1", "13b-0.9.8-distilled", …)."""
    if variant.endswith("-distilled"):
        return DISTILLED_096 if "-0.9.6" in variant else DISTILLED_098_PRESET
    return DEV_13B if variant.startswith("13b") else DEV_2B


def defaults_for(variant: str) -> FamilyDefaults:
    """The engine defaults of a variant (its preset, the sizes, 121 frames at 30 fps)."""
    preset = preset_for(variant)
    return FamilyDefaults(
        steps=preset.steps, guidance=preset.guidance, shift="auto", fps=FPS, frames=FRAMES,
        sizes=SIZES, negative_prompt=NEGATIVE_PROMPT, timesteps=preset.timesteps,
        stg=preset.stg, stg_rescale=None if preset.ranges else preset.rescale,
        reference_noise=REFERENCE_NOISE,
        sampler="stochastic" if preset.stochastic else "euler",
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SchedulerRule:
    """The checkpoint's scheduler as the engine's schedule rule (``shift="auto"``).

    ``rule(steps, latent_shape)`` → (the shift it amounts to, N + 1 times from 1 to 0), from
    :func:`studio.engine.rf_schedule.rf_schedule` with tokens = T'·H'·W'. The original
    ``RectifiedFlowScheduler``'s ``sampler`` ("Uniform" / "LinearQuadratic"), ``shifting``
    ("SD3" / "SimpleDiffusion" / none) and ``target_shift_terminal``.
    """

    sampler: str = "uniform"
    shifting: str | None = "sd3"
    terminal: float | None = 0.1

    @classmethod
    def from_original(cls, d: Mapping[str, Any]) -> SchedulerRule:
        """From a single file's header ``config`` → ``scheduler``."""
        sampler = {"LinearQuadratic": "linear-quadratic"}.get(str(d.get("sampler")), "uniform")
        shifting = {"SD3": "sd3", "SimpleDiffusion": "simple-diffusion"}.get(str(d.get("shifting")))
        terminal = _terminal(d.get("target_shift_terminal"), "target_shift_terminal")
        return cls(sampler, shifting, terminal if shifting == "sd3" else None)

    @classmethod
    def from_diffusers(cls, d: Mapping[str, Any]) -> SchedulerRule:
        """From a diffusers ``FlowMatchEulerDiscreteScheduler`` config (dynamic shifting = the
        token-count rule, ``shift_terminal`` = the terminal)."""
        if not d.get("use_dynamic_shifting"):
            return cls("uniform", None, None)
        return cls("uniform", "sd3", _terminal(d.get("shift_terminal"), "shift_terminal"))

    def __call__(self, steps: int, latent_shape: tuple[int, ...]) -> tuple[float, list[float]]:
        tokens = math.prod(latent_shape[2:])
        times = rf_schedule(steps, sampler=self.sampler, shifting=self.shifting,
                            tokens=tokens, terminal=self.terminal)
        if self.shifting == "sd3":
            return math.exp(token_count_shift(tokens)), times
        if self.shifting == "simple-diffusion":
            return tokens / SIMPLE_DIFFUSION_BASE, times
        return 1.0, times


def _terminal(value: object, field: str) -> float | None:
    """A scheduler config's terminal time: None when absent, else a number in (0, 1)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
        raise CheckpointError(f"the scheduler config's {field} is {value!r}",
                              "it must be a time between 0 and 1 (published: 0.1); the file's "
                              "configuration is damaged")
    return float(value)


#: Latent → RGB preview: ComfyUI's ``LTXV`` factors (``comfy/latent_formats.py`` @
#: 9a9a69fd745d) on the normalised latent; they only drive live previews.
PREVIEW = PreviewFactors(rgb_factors=(
    (0.011202, -0.00063815, -0.010021), (0.086031, 0.065813, 0.00095409),
    (-0.012576, -0.0075734, -0.0040528), (0.0094063, -0.0021688, 0.0026093),
    (0.0037636, 0.012765, 0.0091548), (0.021024, -0.0052973, 0.0034373),
    (-0.0088896, -0.019703, -0.018761), (-0.01316, -0.010523, 0.0019709),
    (-0.0015152, -0.0069891, -0.007581), (-0.0017247, 0.0004656, -0.0033839),
    (0.013617, 0.0047077, -0.0020045), (0.010256, 0.0077318, 0.013948),
    (-0.016108, -0.0062151, 0.0011561), (0.0073407, 0.015628, 0.00044865),
    (0.00095357, -0.0029518, -0.01476), (0.019143, 0.010868, 0.012264),
    (0.0044575, 3.6682e-05, -0.0068508), (-0.00045681, 0.003257, 0.0077929),
    (0.033902, 0.033405, 0.037454), (-0.023001, -0.0024877, -0.0031033),
    (0.050265, 0.038841, 0.033539), (-0.0041018, -0.0011095, 0.0015859),
    (-0.12689, -0.13107, -0.21005), (0.026276, 0.014189, -0.0035963),
    (-0.0048679, 0.0088486, 0.0078029), (-0.001661, -0.0048597, -0.005206),
    (-0.002101, 0.002361, 0.0093796), (-0.022482, -0.021305, -0.015087),
    (-0.015753, -0.010646, -0.0065083), (-0.0046975, 0.0050288, -0.006739),
    (0.011951, 0.020712, 0.016191), (-0.0063704, -0.0084827, -0.0095483),
    (0.007261, -0.0099326, -0.022978), (-0.00091904, 0.0062882, 0.009572),
    (-0.037178, -0.037123, -0.056713), (-0.13373, -0.1072, -0.053801),
    (-0.0053702, 0.0081256, 0.0088397), (-0.15247, -0.21437, -0.21843),
    (0.031441, 0.0070335, -0.0097541), (0.0021528, -0.0089817, -0.021023),
    (0.0038461, -0.0058957, -0.015014), (-0.004347, -0.01294, -0.015972),
    (-0.0054781, -0.010842, -0.0030204), (-0.0065347, 0.0030806, -0.010163),
    (-0.0050414, -0.0071503, -0.00089686), (-0.0085851, -0.0024351, 0.0010674),
    (-0.0090016, -0.0096493, 0.0015692), (0.0050914, 0.012099, 0.019968),
    (0.013758, 0.011669, 0.0081958), (-0.010518, -0.011575, -0.0041307),
    (-0.02841, -0.031266, -0.022149), (0.0029336, 0.036511, 0.018717),
    (-0.016703, -0.016696, -0.0044529), (0.048818, 0.040063, 0.008741),
    (-0.015066, -0.00057328, 0.0029785), (-0.017613, -0.0081034, 0.013086),
    (-0.0092633, 0.010803, -0.0063489), (0.0030851, 0.0004775, 0.012347),
    (-0.022785, -0.023043, -0.026005), (-0.024787, -0.015389, -0.022104),
    (-0.023572, 0.0010544, 0.012361), (-0.0078915, -0.0012271, -0.0060968),
    (-0.011478, -0.0012543, 0.0062679), (-0.054229, 0.026644, 0.0063394),
    (0.0044216, -0.0073338, -0.010464), (-0.0045013, 0.0016082, 0.01442),
    (0.013673, 0.0088877, 0.0041253), (-0.010145, 0.0090072, 0.015695),
    (-0.0056234, 0.0011847, 0.0081261), (-0.0037171, -0.0053538, 0.001259),
    (0.029476, 0.021424, 0.030424), (-0.034925, -0.02434, -0.025316),
    (-0.034127, -0.022406, -0.010589), (-0.017342, -0.013249, -0.010719),
    (-0.0021478, -0.0086051, -0.0029878), (0.0012089, -0.0042391, -0.0068569),
    (0.00090411, -0.0066886, -6.7547e-05), (0.016048, -0.010057, -0.028929),
    (0.001229, 0.010163, 0.018861), (0.017264, 0.00027257, 0.013785),
    (-0.013482, -0.0036427, 0.00067481), (0.0046782, -0.0052423, 0.0024467),
    (-0.0059113, -0.0062244, -0.0018162), (0.015496, 0.014582, 0.0019514),
    (0.0074958, 0.0015886, -0.0082305), (0.019086, 0.001636, -0.0039674),
    (-0.0057021, -0.0027307, -0.0041066), (0.001745, 0.014602, 0.025794),
    (-0.00082788, 0.0022902, 0.0045161), (0.011632, 0.0089193, -0.0072813),
    (0.0075721, 0.0026784, 0.011393), (0.0051939, 0.0036903, 0.014049),
    (-0.018383, -0.022529, -0.024477), (0.00058842, -0.0057874, -0.01477),
    (-0.016125, -0.0086101, -0.014533), (0.02054, 0.020729, 0.0064338),
    (0.0033587, -0.011226, -0.016444), (-0.0014742, -0.010489, 0.0017097),
    (0.02813, 0.023546, 0.032791), (-0.018532, -0.012842, -0.0087756),
    (-0.0080533, -0.010771, -0.017536), (-0.0039009, 0.01615, 0.033359),
    (-0.0074554, -0.014154, -0.006191), (0.0034734, -0.01137, -0.010581),
    (0.011476, 0.0039281, 0.0028231), (0.0071639, -0.0014741, -0.0038066),
    (0.002225, -0.0087552, -0.0095719), (0.024146, 0.021696, 0.028056),
    (-0.0054365, -0.024291, -0.017802), (0.0074263, 0.01051, 0.012705),
    (0.0062669, 0.0062658, 0.019211), (0.016378, 0.0094933, 0.0066971),
    (0.017173, 0.023601, 0.023296), (-0.014568, -0.0098279, -0.011556),
    (0.014431, 0.01443, 0.0066362), (-0.006823, 0.018863, 0.014555),
    (0.0061156, 0.00347, -0.0026662), (-0.0026983, -0.0059402, -0.0092276),
    (0.010235, 0.0074173, -0.0076243), (-0.013255, 0.019322, -0.00092153),
    (0.0024222, -0.0048039, -0.015759), (0.026244, 0.025951, 0.020249),
    (0.015711, 0.018498, 0.0027407), (-0.0021714, 0.0047214, -0.022443),
    (-0.0074747, 0.0074166, 0.01443), (-0.0083906, -0.0079776, 0.0097927),
    (0.038321, 0.0096622, -0.019268), (-0.014605, -0.0067032, 0.0039675),
), bias=(-0.0571, -0.1657, -0.2512))


#: Prompts in the style LTX-Video's documentation recommends: long and detailed, told in order —
#: the main action first, then movements, appearance, the setting, the camera and the light.
PROMPT_EXAMPLES = (
    "A woman with short silver hair and a dark green wool coat walks slowly along a wet "
    "cobblestone street at dusk. She stops beside a lit shop window, turns her head towards the "
    "glass and smiles faintly as her reflection appears. Warm yellow light from the window falls "
    "across her face while the street behind her stays blue and dim. The camera follows at "
    "shoulder height, then holds still as she pauses. The scene looks like a film shot on 35 mm.",
    "A small red sailboat crosses a calm lake in the early morning. Its white sail fills with a "
    "light wind and the hull leaves a thin wake on the mirror-like water. Pine-covered hills "
    "rise behind the lake, with mist drifting low between the trees. The camera pans slowly "
    "from left to right, keeping the boat in the centre of the frame. Soft pink sunrise light "
    "colours the sky and the water.",
    "An old man in a checked shirt sits at a wooden kitchen table and peels an orange with his "
    "thumbs. He lifts the peel away in one long spiral, sets it on a white plate and looks up "
    "towards the window. Sunlight streams through thin curtains and lights the dust in the air. "
    "The camera is static, at table height, in a medium close-up. The colours are warm and "
    "natural, as in a documentary.",
    "A waterfall pours over a mossy cliff into a clear green pool deep in a rainforest. Spray "
    "rises where the water lands and drifts across the ferns on the rocks. A blue butterfly "
    "crosses the frame from right to left. The camera pushes in slowly towards the foot of the "
    "falls. Diffuse overcast light keeps the greens deep and saturated.",
)
