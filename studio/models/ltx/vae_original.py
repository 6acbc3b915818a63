"""The original ``CausalVideoAutoencoder`` config (the ``vae`` object of a single file's header
``config``) to and from :class:`LTXVAEConfig`, with the original's defaults
(``CausalVideoAutoencoder.from_config`` in LTX-Video; docs/families/ltx.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from studio.errors import CheckpointError
from studio.models.ltx.vae_config import RES, RES_WIDEN, LTXVAEConfig, VAEBlock

CLASS_NAME = "CausalVideoAutoencoder"
_HINT = "this is not an LTX-Video 0.9.x VAE configuration; check the file's header 'config'"
#: Default multiplier per block name when its parameters omit one (the original's ``get``s).
_DEFAULT_MULTIPLIER = {RES_WIDEN: 2, "compress_all_x_y": 2, "compress_all_res": 2,
                       "compress_space_res": 2, "compress_time_res": 2}


def _refuse(problem: str) -> CheckpointError:
    return CheckpointError(f"Invalid LTX-Video VAE configuration: {problem}", _HINT)


def parse_block(entry: Any, side: str) -> VAEBlock:
    """``["res_x", 4]`` or ``["compress_all", {"residual": true, "multiplier": 2}]`` → block."""
    if not isinstance(entry, list | tuple) or len(entry) != 2 or not isinstance(entry[0], str):
        raise _refuse(f"{side} block {entry!r} is not a [name, parameters] pair")
    kind, params = entry
    if isinstance(params, int) and not isinstance(params, bool):
        params = {"num_layers": params}
    if not isinstance(params, Mapping):
        raise _refuse(f"{side} block {kind!r} has parameters {params!r}")
    unknown = set(params) - {"num_layers", "multiplier", "inject_noise", "residual"}
    if unknown:
        raise _refuse(f"{side} block {kind!r} has unsupported parameters {sorted(unknown)}")
    if kind == RES and "num_layers" not in params:
        raise _refuse(f"{side} res_x block needs num_layers")
    try:
        return VAEBlock(
            kind, num_layers=int(params.get("num_layers", 1)) if kind == RES else 1,
            multiplier=int(params.get("multiplier", _DEFAULT_MULTIPLIER.get(kind, 1))),
            inject_noise=bool(params.get("inject_noise", False)),
            residual=bool(params.get("residual", False)))
    except (TypeError, ValueError) as error:
        raise _refuse(f"{side} block {kind!r}: {error}") from None


def _blocks(d: Mapping[str, Any], key: str, side: str) -> tuple[VAEBlock, ...]:
    entries = d.get(key, d.get("blocks"))
    if not isinstance(entries, list | tuple):
        raise _refuse(f"neither {key!r} nor 'blocks' is a list")
    return tuple(parse_block(entry, side) for entry in entries)


def _check_fixed(d: Mapping[str, Any]) -> None:
    """Fields the original accepts but every LTX-Video VAE fixes; others are refused."""
    name = d.get("_class_name", CLASS_NAME)
    if name != CLASS_NAME:
        raise _refuse(f"_class_name {name!r} is not {CLASS_NAME!r}")
    if d.get("dims") not in (3, [3], (3,)):
        raise _refuse(f"dims {d.get('dims')!r} is not 3 (2-D and (2, 1) VAEs are not LTX-Video's)")
    if d.get("use_quant_conv", True):
        raise _refuse("use_quant_conv must be false (LTX-Video VAEs have no quant_conv)")
    if d.get("normalize_latent_channels", False):
        raise _refuse("normalize_latent_channels is not supported")


def config_from_original(d: Mapping[str, Any]) -> LTXVAEConfig:
    if not isinstance(d, Mapping):
        raise _refuse(f"expected a JSON object, got {type(d).__name__}")
    _check_fixed(d)
    try:
        return LTXVAEConfig(encoder_blocks=_blocks(d, "encoder_blocks", "encoder"),
                   decoder_blocks=_blocks(d, "decoder_blocks", "decoder"), **_fields(d))
    except KeyError as error:
        raise _refuse(f"missing field {error}") from None
    except (TypeError, ValueError) as error:
        raise _refuse(str(error)) from None


def _fields(d: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar fields, with ``CausalVideoAutoencoder.from_config``'s defaults."""
    log_var = "per_channel" if d.get("double_z", True) else "none"
    return {
        "in_channels": int(d.get("in_channels", 3)),
        "out_channels": int(d.get("out_channels", 3)),
        "latent_channels": int(d["latent_channels"]),
        "patch_size": int(d.get("patch_size", 1)),
        "encoder_base_channels": int(d.get("encoder_base_channels", 128)),
        "decoder_base_channels": int(d.get("decoder_base_channels", 128)),
        "norm_layer": str(d.get("norm_layer", "group_norm")),
        "latent_log_var": str(d.get("latent_log_var", log_var)),
        "causal_decoder": bool(d.get("causal_decoder", False)),
        "timestep_conditioning": bool(d.get("timestep_conditioning", False)),
        "spatial_padding_mode": str(d.get("spatial_padding_mode", "zeros")),
        "scaling_factor": float(d.get("scaling_factor", 1.0)),
    }


def block_entry(block: VAEBlock) -> list[Any]:
    """The original's ``[name, parameters]`` for one block."""
    if block.kind == RES:
        params: dict[str, Any] = {"num_layers": block.num_layers}
    else:
        params = {"multiplier": block.multiplier}
    if block.inject_noise:
        params["inject_noise"] = True
    if block.residual:
        params["residual"] = True
    return [block.kind, params]


def config_to_original(config: LTXVAEConfig) -> dict[str, Any]:
    return {
        "_class_name": CLASS_NAME,
        "dims": 3,
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "latent_channels": config.latent_channels,
        "encoder_blocks": [block_entry(b) for b in config.encoder_blocks],
        "decoder_blocks": [block_entry(b) for b in config.decoder_blocks],
        "encoder_base_channels": config.encoder_base_channels,
        "decoder_base_channels": config.decoder_base_channels,
        "scaling_factor": config.scaling_factor,
        "norm_layer": config.norm_layer,
        "patch_size": config.patch_size,
        "latent_log_var": config.latent_log_var,
        "use_quant_conv": False,
        "causal_decoder": config.causal_decoder,
        "timestep_conditioning": config.timestep_conditioning,
        "spatial_padding_mode": config.spatial_padding_mode,
    }
