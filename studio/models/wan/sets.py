"""Assemble the Wan parts found in one folder into sets, and say what is missing or mismatched.

A published Wan folder holds the DiT (often sharded with an index), ``Wan2.x_VAE.pth``,
``models_t5_umt5-xxl-enc-bf16.pth`` and ``google/umt5-xxl/``; a diffusers folder holds
``transformer/``, ``vae/``, ``text_encoder/`` and ``tokenizer/``; a ComfyUI models folder holds
``diffusion_models/``, ``vae/`` and ``text_encoders/`` shared by all its DiTs (:mod:`.comfy`).
Pairing is checked before anything loads: latent channels DiT ↔ VAE, text width DiT ↔ encoder
(docs/families/wan.md §1, §14). A part found in a shared folder (the tokenizer chosen in the
settings) fills a role a set has no part of its own for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from studio.engine.model import DIT_LOW
from studio.models.family import Component, FolderFindings, ModelSet
from studio.models.wan import comfy
from studio.models.wan.experts import as_low_expert, claims_expert, expert_pairs
from studio.models.wan.identify import FAMILY_NAME
from studio.models.wan.keys import DIT, IMAGE_ENCODER, TEXT_ENCODER, TOKENIZER, VAE
from studio.models.wan.presets import EXPERT_RELEASES, VARIANTS, WanVariant

ROLES = (DIT, VAE, TEXT_ENCODER, TOKENIZER)
#: The CLIP file Wan 2.1 I2V/FLF2V-14B are published with.
CLIP_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
_ROLE_NAMES = {DIT: "Wan DiT", VAE: "VAE", TEXT_ENCODER: "UMT5 text encoder",
               IMAGE_ENCODER: "CLIP image encoder",
               TOKENIZER: "tokenizer folder"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Where:
    """The folder a set was assembled in, and whether it is a ComfyUI models folder (hints then
    name ComfyUI's files, and the shared VAE / encoders are no "spare" parts)."""

    root: Path
    comfy: bool = False


def set_root(directory: Path) -> Path | None:
    """``google/umt5-xxl`` (the published tokenizer folder) and A14B's ``high_noise_model/`` /
    ``low_noise_model/`` join the set above them; anything below a ComfyUI models folder joins
    that folder."""
    if directory.parent.name == "google":
        own: Path | None = directory.parent.parent
    else:
        own = directory.parent if directory.name in ("high_noise_model", "low_noise_model") \
            else None
    return comfy.comfy_root(own or directory) or own


def assemble(root: Path, found: FolderFindings) -> list[ModelSet]:
    """One set per DiT, or per pair of A14B experts, in the folder (one set named after the
    folder when there is at most one, except in a ComfyUI models folder)."""
    pairs, singles = expert_pairs([c for c in found.components if c.role == DIT])
    heads: list[tuple[Component | None, Component | None]] = [*pairs, *((d, None) for d in singles)]
    where = _Where(root, comfy.in_tree(found.components, root))
    if not heads or (len(heads) == 1 and not where.comfy):
        dit, low = heads[0] if heads else (None, None)
        return [_make_set(str(root), where, dit, found, low)]
    return [_make_set(str(dit.path), where, dit, found, low) for dit, low in heads]


def _preference(component: Component, dit: Component | None) -> tuple[int, int, str]:
    """Sort key among candidates for one role: the one that fits ``dit`` first, then one
    without a problem."""
    if component.role == TOKENIZER:
        return (0 if "umt5" in str(component.path).lower() else 1, 0, str(component.path))
    wanted = None if dit is None else (
        _latent_channels(dit) if component.role == VAE else dit.context_dim)
    fits = 0 if wanted in (None, component.channels) else 1
    return (fits, 1 if component.problem else 0, str(component.path))


def _choose(found: FolderFindings, dit: Component | None) -> list[Component]:
    """The best VAE, text encoder and tokenizer for ``dit``: the folder's own, else a shared
    one."""
    chosen = []
    roles = (VAE, TEXT_ENCODER, TOKENIZER) + ((IMAGE_ENCODER,) if _takes_clip(dit) else ())
    for role in roles:
        candidates = [c for c in found.components if c.role == role] or [
            c for c in found.shared if c.role == role]
        if candidates:
            chosen.append(min(candidates, key=lambda c: _preference(c, dit)))
    return chosen


def _make_set(set_id: str, where: _Where, dit: Component | None, found: FolderFindings,
              low: Component | None = None) -> ModelSet:
    """A set around ``dit`` (with ``low``, the low-noise expert of a pair)."""
    variant = _variant_of(dit, low)
    if dit is not None and variant is not None:
        dit = replace(dit, variant=variant.name)
    chosen = [dit] if dit else []
    if low is not None:
        chosen.append(as_low_expert(replace(low, variant=variant.name if variant else "-")))
    chosen += _choose(found, dit)
    problems = pairing_problems(where, dit, variant, chosen)
    complete = all(any(c.role == role for c in chosen) for role in _roles(variant))
    notes = list(found.ignored) + _spare_notes(where, found, chosen)
    (problems if not complete or problems else notes).extend(found.errors)
    return ModelSet(
        id=set_id, family=FAMILY_NAME, variant=variant.name if variant else "-",
        components=tuple(chosen), dtype=dit.dtype if dit else "-",
        size=sum(c.size for c in chosen), complete=complete, problems=tuple(problems),
        notes=tuple(notes), name=_name(where, dit, variant),
    )  # fmt: skip


def _takes_clip(dit: Component | None) -> bool:
    variant = VARIANTS.get(dit.variant) if dit is not None else None
    return variant is not None and variant.clip


def _roles(variant: WanVariant | None) -> tuple[str, ...]:
    """The parts a set of ``variant`` needs: an A14B's second expert, I2V-14B's CLIP."""
    extra = (DIT_LOW,) if variant is not None and variant.experts else ()
    extra += (IMAGE_ENCODER,) if variant is not None and variant.clip else ()
    return ROLES + extra


def _spare_notes(where: _Where, found: FolderFindings, chosen: list[Component]) -> list[str]:
    if where.comfy:  # a ComfyUI folder's VAEs and encoders serve whichever set they fit
        return []
    return [f"{c.path}: spare {_ROLE_NAMES[c.role]}, not used"
            for c in found.components if c not in chosen and c.role != DIT]  # fmt: skip


def _name(where: _Where, dit: Component | None, variant: WanVariant | None) -> str:
    if variant is None or dit is None:
        return where.root.name
    return comfy.set_name(variant.title, dit) if where.comfy else \
        f"{variant.title} — {where.root.name}"


def pairing_problems(
    where: _Where, dit: Component | None, variant: WanVariant | None, chosen: list[Component]
) -> list[str]:
    """Why the chosen parts cannot run together, naming the files (empty when they can)."""
    parts = {c.role: c for c in chosen}
    if dit is None:
        return [_missing(where, DIT)] if chosen else []
    problems = _variant_problems(dit, variant) + _expert_problems(dit, variant, parts)
    vae, text = parts.get(VAE), parts.get(TEXT_ENCODER)
    latent = variant.latent_channels if variant is not None else dit.channels
    if vae is None:
        problems.append(f"{_missing(where, VAE)}: {_vae_needed(where, variant)}")
    elif vae.channels != latent:
        problems.append(f"the VAE in {vae.path} has {vae.channels} latent channels but the DiT "
                        f"in {dit.path} makes {latent}: {_vae_needed(where, variant)}")
    if text is None:
        problems.append(_missing(where, TEXT_ENCODER))
    elif text.channels != dit.context_dim:
        problems.append(f"the text encoder in {text.path} gives {text.channels}-wide features "
                        f"but the DiT in {dit.path} takes {dit.context_dim}: Wan needs the "
                        f"UMT5-XXL encoder ({_text_files(where)})")
    if TOKENIZER not in parts:
        problems.append(_missing(where, TOKENIZER))
    if variant is not None and variant.clip and IMAGE_ENCODER not in parts:
        problems.append(f"no CLIP image encoder in {where.root}: {variant.title} needs "
                        f"{CLIP_FILE}")
    problems += [c.problem for c in chosen if c.problem and c.role != DIT]
    return problems


def _missing(where: _Where, role: str) -> str:
    """Why a set lacks a part of ``role``, in the words of its folder's layout."""
    if role == TOKENIZER:
        return comfy.TOKENIZER_PROBLEM if where.comfy else (
            f"no tokenizer folder in {where.root}: Wan needs google/umt5-xxl (tokenizer.json / "
            "spiece.model), or choose it once in Settings → UMT5 tokenizer")
    if role == TEXT_ENCODER:
        return (f"no UMT5 text encoder in {where.root}: Wan needs {_text_files(where)}"
                + ("" if where.comfy else " (or a text_encoder/ folder)"))
    if role == VAE:
        return f"no VAE in {where.root}"
    below = " (diffusion_models/)" if where.comfy else " (diffusion_pytorch_model*.safetensors)"
    return f"no Wan DiT{below} in {where.root}"


def _vae_needed(where: _Where, variant: WanVariant | None) -> str:
    if variant is None:
        return "use the VAE published with this DiT"
    file = comfy.VAE_FILES[variant.vae_version] if where.comfy else variant.vae_file
    return f"{variant.title} needs the Wan {variant.vae_version} VAE ({file})"


def _text_files(where: _Where) -> str:
    return comfy.TEXT_FILES if where.comfy else "models_t5_umt5-xxl-enc-bf16.pth"


def _latent_channels(dit: Component) -> int:
    variant = VARIANTS.get(dit.variant)
    return variant.latent_channels if variant is not None else dit.channels


def _variant_of(dit: Component | None, low: Component | None) -> WanVariant | None:
    """The release of a DiT, or of an expert pair (A14B)."""
    if dit is None:
        return None
    if low is not None:
        return EXPERT_RELEASES.get(dit.variant)
    return VARIANTS.get(dit.variant)


def _variant_problems(dit: Component, variant: WanVariant | None) -> list[str]:
    if variant is None:
        return [f"the DiT in {dit.path} takes {dit.channels} latent channels, which no Wan VAE "
                "produces"]
    return [dit.problem] if dit.problem else []


def _expert_problems(dit: Component, variant: WanVariant | None,
                     parts: dict[str, Component]) -> list[str]:
    """An A14B expert without its partner (it would run half of the model)."""
    if DIT_LOW in parts:
        return []
    if (variant is not None and variant.experts) or claims_expert(dit):
        return [f"{dit.path} is one of the two experts of Wan 2.2 A14B, and the other was not "
                "found beside it: put high_noise_model/ and low_noise_model/ (or the "
                "…high_noise… and …low_noise… files) in one folder"]
    return []
