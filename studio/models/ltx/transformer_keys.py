"""Parameter names of the LTX transformer in its two published layouts.

*original* (single-file checkpoints, ``model.diffusion_model.`` + our names: ``patchify_proj``,
``adaln_single``, ``attn1.q_norm`` …) and *diffusers* (``LTXVideoTransformer3DModel``:
``proj_in``, ``time_embed``, ``attn1.norm_q`` …). The two differ only by those four module
names (the rename table of LTX-Video's ``diffusers_config_mapping.py`` and diffusers'
``single_file_utils.py``); every other name is shared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from studio.errors import CheckpointError

#: Prefix of the transformer's keys in a single-file checkpoint (the VAE's are ``vae.``).
PREFIX = "model.diffusion_model."
ORIGINAL = "original"
DIFFUSERS = "diffusers"

#: diffusers module name → ours, matched as whole dot-separated segments.
_TO_OWN = {"proj_in": "patchify_proj", "time_embed": "adaln_single", "norm_q": "q_norm",
           "norm_k": "k_norm"}  # fmt: skip
_TO_DIFFUSERS = {own: theirs for theirs, own in _TO_OWN.items()}
#: First segments that tell the layouts apart.
_MARKERS = {"patchify_proj": ORIGINAL, "adaln_single": ORIGINAL, "proj_in": DIFFUSERS,
            "time_embed": DIFFUSERS}  # fmt: skip

T = TypeVar("T")


def _rename(key: str, table: Mapping[str, str]) -> str:
    return ".".join(table.get(part, part) for part in key.split("."))


def _strip(keys: Iterable[str]) -> list[str]:
    keys = list(keys)
    if any(k.startswith(PREFIX) for k in keys):
        return [k[len(PREFIX):] for k in keys if k.startswith(PREFIX)]
    return keys


def transformer_layout(keys: Iterable[str]) -> str:
    """``"original"`` or ``"diffusers"`` for an LTX transformer's key set (prefix or not).

    Raises :class:`CheckpointError` when the keys are neither (or both).
    """
    found = {_MARKERS[k.split(".", 1)[0]] for k in _strip(keys) if k.split(".", 1)[0] in _MARKERS}
    if len(found) != 1:
        what = "mixes both layouts" if found else "has no patchify_proj / proj_in weights"
        raise CheckpointError(f"not an LTX-Video transformer state dict: it {what}",
                              "choose an LTX-Video transformer or single-file checkpoint")
    return found.pop()


def own_transformer_state(raw: Mapping[str, T]) -> dict[str, T]:
    """The transformer's tensors under our (original, unprefixed) names.

    ``raw``: original names, with or without ``model.diffusion_model.`` (a whole single file
    may be passed: its other keys, such as ``vae.*``, are left out), or diffusers names.
    """
    layout = transformer_layout(raw)
    if any(k.startswith(PREFIX) for k in raw):
        state = {k[len(PREFIX):]: v for k, v in raw.items() if k.startswith(PREFIX)}
    else:
        state = dict(raw)
    if layout == DIFFUSERS:
        state = {_rename(k, _TO_OWN): v for k, v in state.items()}
    return state


def diffusers_names(state: Mapping[str, T]) -> dict[str, T]:
    """Our state dict renamed to diffusers' ``LTXVideoTransformer3DModel`` names."""
    return {_rename(k, _TO_DIFFUSERS): v for k, v in state.items()}
