"""A diffusers ``AutoencoderKLLTXVideo`` ``config.json`` → :class:`LTXVAEConfig`, by replaying
diffusers' encoder and decoder constructors into the original's block lists
(docs/families/ltx.md). Defaults are diffusers' (those of 0.9.0)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from studio.errors import CheckpointError
from studio.models.ltx.vae_config import RES, RES_WIDEN, LTXVAEConfig, VAEBlock

#: diffusers' down-block classes: before 0.9.5, and 0.9.5's.
CLASSIC, V095 = "LTXVideoDownBlock3D", "LTXVideo095DownBlock3D"
DOWNSAMPLE_TYPES = {"compress_all": "conv", "compress_space_res": "spatial",
                    "compress_time_res": "temporal", "compress_all_res": "spatiotemporal"}

_KINDS = {v: k for k, v in DOWNSAMPLE_TYPES.items()}
DEFAULTS: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "block_out_channels": (128, 256, 512, 512), "down_block_types": (CLASSIC,) * 4,
    "decoder_block_out_channels": (128, 256, 512, 512), "layers_per_block": (4, 3, 3, 3, 4),
    "decoder_layers_per_block": (4, 3, 3, 3, 4), "spatio_temporal_scaling": (True,) * 3 + (False,),
    "decoder_spatio_temporal_scaling": (True,) * 3 + (False,),
    "decoder_inject_noise": (False,) * 5, "downsample_type": ("conv",) * 4,
    "upsample_residual": (False,) * 4, "upsample_factor": (1,) * 4,
    "timestep_conditioning": False, "patch_size": 4, "patch_size_t": 1, "resnet_norm_eps": 1e-6,
    "scaling_factor": 1.0, "encoder_causal": True, "decoder_causal": False,
}


def _refuse(problem: str) -> CheckpointError:
    return CheckpointError(f"Invalid diffusers LTX-Video VAE config: {problem}",
                           "check vae/config.json (AutoencoderKLLTXVideo)")


def _ratio(wider: int, narrower: int, what: str) -> int:
    if narrower <= 0 or wider % narrower:
        raise _refuse(f"{what}: {wider} channels is not a multiple of {narrower}")
    return wider // narrower


def _encoder_stage(c: Mapping[str, Any], i: int, width: int, out: int) -> list[VAEBlock]:
    """Original blocks of diffusers down block ``i`` (input ``width``, output ``out`` channels)."""
    blocks = [VAEBlock(RES, num_layers=c["layers_per_block"][i])] \
        if c["layers_per_block"][i] > 0 else []
    v095 = c["down_block_types"][i] == V095
    kind = _KINDS.get(c["downsample_type"][i], "") if v095 else "compress_all"
    if c["spatio_temporal_scaling"][i]:
        if not kind:
            raise _refuse(f"downsample_type {c['downsample_type'][i]!r}")
        widens = kind != "compress_all"
        blocks.append(VAEBlock(kind, multiplier=_ratio(out, width, kind) if widens else 1))
        width = out if widens else width
    if out != width:
        if v095:
            raise _refuse(f"down block {i} changes the width without a downsampler")
        blocks.append(VAEBlock(RES_WIDEN, multiplier=_ratio(out, width, "res_x_y")))
    return blocks


def _encoder(c: Mapping[str, Any]) -> tuple[VAEBlock, ...]:
    outs = list(c["block_out_channels"])
    v095 = c["down_block_types"][-1] == V095
    count = len(outs) - (1 if v095 else 0)
    blocks: list[VAEBlock] = []
    for i in range(count):
        out = outs[i + 1] if v095 or i + 1 < count else outs[i]
        blocks += _encoder_stage(c, i, outs[i], out)
    return (*blocks, VAEBlock(RES, num_layers=c["layers_per_block"][-1]))


def _decoder_stage(rev: Mapping[str, list[Any]], i: int, width: int) -> list[VAEBlock]:
    """Original blocks (running order) of diffusers up block ``i`` fed ``width`` channels."""
    factor, inject = int(rev["upsample_factor"][i]), bool(rev["decoder_inject_noise"][i + 1])
    out_width = rev["decoder_block_out_channels"][i]
    if width % factor or out_width % factor:
        raise _refuse(f"upsample_factor {factor} does not divide up block {i}'s widths")
    first, out = width // factor, out_width // factor
    if first != out and factor != 1:
        raise _refuse(f"up block {i} both changes the width and reduces it by its factor")
    blocks = [VAEBlock(RES_WIDEN, multiplier=_ratio(first, out, "res_x_y"),
                       inject_noise=inject)] if first != out else []
    if rev["decoder_spatio_temporal_scaling"][i]:
        blocks.append(VAEBlock("compress_all", multiplier=factor,
                               residual=bool(rev["upsample_residual"][i])))
    elif factor != 1:
        raise _refuse(f"up block {i} has upsample_factor {factor} but no upsampler")
    layers = rev["decoder_layers_per_block"][i + 1]
    return blocks + ([VAEBlock(RES, num_layers=layers, inject_noise=inject)] if layers else [])


def _decoder(c: Mapping[str, Any]) -> tuple[tuple[VAEBlock, ...], int]:
    """Blocks in the original's order and the decoder's base (last) width."""
    rev = {k: list(reversed(c[k])) for k in (
        "decoder_block_out_channels", "decoder_layers_per_block", "decoder_spatio_temporal_scaling",
        "decoder_inject_noise", "upsample_residual", "upsample_factor")}
    outs = rev["decoder_block_out_channels"]
    running = [VAEBlock(RES, num_layers=rev["decoder_layers_per_block"][0],
                        inject_noise=bool(rev["decoder_inject_noise"][0]))]
    width = outs[0]
    for i in range(len(outs)):
        running += _decoder_stage(rev, i, width)
        width = outs[i] // int(rev["upsample_factor"][i])
    return tuple(reversed(running)), width


def _lengths_ok(c: Mapping[str, Any]) -> str:
    enc, dec = len(c["block_out_channels"]), len(c["decoder_block_out_channels"])
    v095 = c["down_block_types"][-1] == V095
    stages = enc - (1 if v095 else 0)
    wanted: dict[str, int] = {"down_block_types": stages, "layers_per_block": stages + 1,
                              "spatio_temporal_scaling": stages, "downsample_type": stages,
                              "decoder_layers_per_block": dec + 1, "decoder_inject_noise": dec + 1,
                              "decoder_spatio_temporal_scaling": dec, "upsample_residual": dec,
                              "upsample_factor": dec}
    for key, length in wanted.items():
        if not isinstance(c[key], Sequence) or len(c[key]) < length:
            return f"{key} needs {length} entries, got {c[key]!r}"
    return ""


def read_diffusers(d: Mapping[str, Any]) -> LTXVAEConfig:
    if not isinstance(d, Mapping):
        raise _refuse(f"expected a JSON object, got {type(d).__name__}")
    c = {**DEFAULTS, **{k: v for k, v in d.items() if v is not None}}
    if c["patch_size_t"] != 1 or not c["encoder_causal"] or c["resnet_norm_eps"] != 1e-6:
        raise _refuse("patch_size_t must be 1, encoder_causal true and resnet_norm_eps 1e-6")
    try:
        problem = _lengths_ok(c)
        if problem:
            raise _refuse(problem)
        decoder, base = _decoder(c)
        return LTXVAEConfig(encoder_blocks=_encoder(c), decoder_blocks=decoder,
                   in_channels=int(c["in_channels"]), out_channels=int(c["out_channels"]),
                   latent_channels=int(c["latent_channels"]), patch_size=int(c["patch_size"]),
                   encoder_base_channels=int(c["block_out_channels"][0]),
                   decoder_base_channels=base, latent_log_var="uniform",
                   causal_decoder=bool(c["decoder_causal"]),
                   timestep_conditioning=bool(c["timestep_conditioning"]),
                   scaling_factor=float(c["scaling_factor"]))
    except (TypeError, ValueError, IndexError) as error:
        raise _refuse(str(error)) from None
