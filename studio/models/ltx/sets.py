"""Assemble the LTX-Video parts of one folder into sets, with their pairing problems.

A single file is its own DiT and VAE (its ``vae.`` keys); a diffusers folder gives the
transformer, ``vae/``, ``text_encoder/`` and ``tokenizer/``. T5 comes as a transformers folder
(which is its own tokenizer when it holds the tokenizer files) or as one file beside a tokenizer
folder. A folder with several DiT files (the dev and distilled checkpoints side by side) gives one
set per DiT, each named by its file. Pairing: the VAE's latent channels = the DiT's channels in
(128), the T5 width = the DiT's caption width (4096).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from studio.errors import CheckpointError
from studio.models.family import (
    DIT,
    TEXT_ENCODER,
    TOKENIZER,
    VAE,
    Component,
    FolderFindings,
    ModelSet,
)
from studio.models.ltx.identify import (
    FAMILY_NAME,
    SINGLE,
    TOKENIZER_FILES,
    VAE_PREFIX,
    vae_version,
)
from studio.models.ltx.presets import TITLE
from studio.models.weight_files import probe_weights

ROLES = (DIT, VAE, TEXT_ENCODER, TOKENIZER)
_NEEDS = {DIT: "an LTX-Video checkpoint (ltxv-*.safetensors or a diffusers transformer/)",
          VAE: "the VAE (the vae.* keys of a single file, or a diffusers vae/ folder)",
          TEXT_ENCODER: "the T5-v1.1-XXL text encoder (a text_encoder/ folder, or "
                        "t5xxl_*.safetensors beside a tokenizer/ folder)",
          TOKENIZER: "the T5 tokenizer (a tokenizer/ folder with spiece.model)"}  # fmt: skip


def assemble(root: Path, found: FolderFindings) -> list[ModelSet]:
    """One set per DiT in the folder (one set naming what is missing when there is none)."""
    unique = list({(c.role, c.path): c for c in [*found.components, *found.shared]}.values())
    dits = sorted((c for c in unique if c.role == DIT), key=_preference)
    shared = [c for c in unique if c.role != DIT]
    if not dits:
        return [_one_set(root, None, shared, found, several=False)]
    return [_one_set(root, dit, shared, found, several=len(dits) > 1) for dit in dits]


def _one_set(root: Path, dit: Component | None, others: list[Component], found: FolderFindings,
             several: bool) -> ModelSet:
    parts: dict[str, Component] = {} if dit is None else {DIT: dit}
    problems: list[str] = []
    if dit is not None and dit.layout == SINGLE:
        vae, problem = single_file_vae(dit)
        if vae is not None:
            parts[VAE] = vae
        problems += [problem] if problem else []
    for role in (VAE, TEXT_ENCODER, TOKENIZER):
        candidates = sorted((c for c in others if c.role == role), key=_preference)
        if role not in parts and candidates:
            parts[role] = candidates[0]
    if TOKENIZER not in parts and TEXT_ENCODER in parts and _has_tokenizer(parts[TEXT_ENCODER]):
        parts[TOKENIZER] = replace(parts[TEXT_ENCODER], role=TOKENIZER, size=0)
    problems += [f"no {_NEEDS[role]} in {root}" for role in ROLES if role not in parts]
    problems += [c.problem for c in parts.values() if c.problem] + pairing(parts)
    complete = all(role in parts for role in ROLES)
    (problems if problems or not complete else []).extend(found.errors)
    used = {(c.role, c.path) for c in parts.values()}
    notes = list(found.ignored) + [f"{c.path}: spare part, not used" for c in others
                                   if (c.role, c.path) not in used and c.role != TOKENIZER]
    return ModelSet(
        id=str(dit.path) if several and dit is not None else str(root), family=FAMILY_NAME,
        variant=dit.variant if dit else "-", components=tuple(parts[r] for r in ROLES
                                                              if r in parts),
        dtype=dit.dtype if dit else "-", size=sum(c.size for c in parts.values()),
        complete=complete, problems=tuple(dict.fromkeys(problems)), notes=tuple(notes),
        name=set_name(dit) if dit else f"{TITLE} — {root.name}",
    )  # fmt: skip


def single_file_vae(dit: Component) -> tuple[Component | None, str]:
    """The VAE inside a single file (same file, its ``vae.`` keys), or why there is none."""
    try:
        shapes = probe_weights(dit.path).shapes()
    except CheckpointError as exc:
        return None, exc.message
    stats = shapes.get(VAE_PREFIX + "per_channel_statistics.mean-of-means")
    if not any(key.startswith(VAE_PREFIX) for key in shapes):
        return None, ""
    if stats is None:
        return None, (f"{dit.path.name}: its VAE lacks vae.per_channel_statistics (the latent "
                      "statistics); the file is incomplete")
    return replace(dit, role=VAE, variant=vae_version(shapes, VAE_PREFIX), size=0,
                   channels=int(stats[0]), context_dim=0, problem=""), ""


def set_name(dit: Component) -> str:
    """"LTX-Video 2B 0.9.1 (BF16)", "LTX-Video 13B 0.9.8 distilled (F8_E4M3)"."""
    size, version, *rest = dit.variant.split("-")
    words = [TITLE, size.upper(), version, *rest]
    return " ".join(words) + f" ({dit.dtype})"


def pairing(parts: dict[str, Component]) -> list[str]:
    """Why the chosen parts cannot run together, naming their files."""
    dit, vae, t5 = parts.get(DIT), parts.get(VAE), parts.get(TEXT_ENCODER)
    problems = []
    if dit is not None and vae is not None and vae.channels and vae.channels != dit.channels:
        problems.append(f"the VAE in {vae.path} has {vae.channels} latent channels but the "
                        f"transformer in {dit.path} takes {dit.channels}")
    if dit is not None and t5 is not None and t5.channels and t5.channels != dit.context_dim:
        problems.append(f"the T5 encoder in {t5.path} is {t5.channels} wide but the transformer "
                        f"in {dit.path} reads {dit.context_dim}: use T5-v1.1-XXL")
    return problems


def _has_tokenizer(component: Component) -> bool:
    return component.path.is_dir() and any((component.path / n).is_file()
                                           for n in TOKENIZER_FILES)


def _preference(component: Component) -> tuple[int, str]:
    return (1 if component.problem else 0, str(component.path))
