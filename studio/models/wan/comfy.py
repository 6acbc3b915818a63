"""ComfyUI's Wan files: a ComfyUI ``models/`` folder, or a Comfy-Org ``split_files/`` folder, read
as one library of parts (docs/families/wan.md §14).

ComfyUI keeps each kind of part in its own sub-folder: ``diffusion_models/`` (older installs:
``unet/``), ``vae/`` and ``text_encoders/`` (older: ``clip/``); the Comfy-Org repackagings
(``Wan_2.1_ComfyUI_repackaged``, ``Wan_2.2_ComfyUI_Repackaged``) ship the same sub-folders under
``split_files/``. The files are in layouts the studio already reads — original DiT keys (with or
without ``model.diffusion_model.``), original VAE keys, Hugging Face UMT5 keys — so only the
grouping is new: everything below such a folder is one scan root, every DiT (or A14B pair) there
is one set, and the VAE and text encoder files are shared by every set whose shapes fit them.

No tokenizer folder comes with these files; the user chooses ``google/umt5-xxl`` once
(the ``umt5_tokenizer`` setting), and the scan offers it to every set that has none.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from studio.models.family import TOKENIZER, Component
from studio.models.weight_files import WeightFiles

#: ComfyUI's part folders (current and older names; ``clip_vision/`` holds the CLIP image
#: encoder of Wan 2.1 I2V / FLF2V).
PART_FOLDERS = ("diffusion_models", "unet", "vae", "text_encoders", "clip", "clip_vision")
#: Names of the folder that holds them: a ComfyUI install's, a Comfy-Org repository's.
ROOT_NAMES = ("models", "split_files")
#: How deep a user's own folders inside a part folder may go (``diffusion_models/wan/2.2/``).
_MAX_NESTING = 3

#: The one problem of a set made of ComfyUI files while no tokenizer folder is known.
TOKENIZER_PROBLEM = (
    "ComfyUI's files carry no tokenizer folder; Wan's UMT5 needs the google/umt5-xxl tokenizer "
    "folder (tokenizer.json / spiece.model): choose it once in Settings → UMT5 tokenizer, or "
    "`studio models tokenizer PATH`"
)
#: The Comfy-Org file names, for hints.
VAE_FILES = {"2.1": "wan_2.1_vae.safetensors", "2.2": "wan2.2_vae.safetensors"}
TEXT_FILES = "umt5_xxl_fp16.safetensors or umt5_xxl_fp8_e4m3fn_scaled.safetensors"
#: The tensor in which ComfyUI may store the SentencePiece model (bytes as uint8) beside the
#: UMT5 weights (ComfyUI's CLIP loader reads ``spiece_model`` from the file for Wan).
EMBEDDED_TOKENIZER = "spiece_model"


def comfy_root(directory: Path) -> Path | None:
    """The ComfyUI models folder that ``directory`` belongs to — a part folder, or a folder
    inside one — or None."""
    for folder in (directory, *directory.parents[:_MAX_NESTING]):
        if folder.name in PART_FOLDERS and _is_root(folder.parent):
            return folder.parent
    return None


def _is_root(folder: Path) -> bool:
    """Named like ComfyUI's models folder, or holding two of its part folders (a user may have
    renamed ``models/``)."""
    if folder.name in ROOT_NAMES:
        return True
    return sum((folder / name).is_dir() for name in PART_FOLDERS) >= 2


def in_tree(components: list[Component], root: Path) -> bool:
    """Whether any of ``components`` was found below ComfyUI part folders of ``root`` (then
    ``root`` is a ComfyUI models folder, not a release folder)."""
    return any(comfy_root(c.path if c.role == TOKENIZER else c.path.parent) == root
               for c in components)  # fmt: skip


def set_name(title: str, dit: Component) -> str:
    """"Wan 2.1 T2V 1.3B — wan2.1_t2v_1.3B_fp16": the release and the DiT file (an A14B pair
    by its high-noise file, without "high_noise")."""
    stem = dit.path.name.split(".safetensors")[0].split(".pth")[0]
    return f"{title} — {stem.replace('_high_noise', '').replace('high_noise_', '')}"


def without_embedded_tokenizer(weights: WeightFiles) -> WeightFiles:
    """``weights`` without an embedded ``spiece_model`` tensor: it is no weight (uint8 bytes of
    a SentencePiece model), so neither the dtype check nor the loader may see it."""
    if not any(EMBEDDED_TOKENIZER in header.tensors for header in weights.headers):
        return weights
    headers = tuple(replace(header, tensors={key: info for key, info in header.tensors.items()
                                             if key != EMBEDDED_TOKENIZER})
                    for header in weights.headers)  # fmt: skip
    return replace(weights, headers=headers)
