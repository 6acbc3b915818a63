"""Assemble the Wan parts found in one folder into sets, and say what is missing or mismatched.

A published Wan folder holds the DiT (often sharded with an index), ``Wan2.x_VAE.pth``,
``models_t5_umt5-xxl-enc-bf16.pth`` and ``google/umt5-xxl/``; a diffusers folder holds
``transformer/``, ``vae/``, ``text_encoder/`` and ``tokenizer/``. Pairing is checked before
anything loads: latent channels DiT ↔ VAE, text width DiT ↔ encoder (docs/families/wan.md §1).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from studio.engine.model import DIT_LOW
from studio.models.family import Component, FolderFindings, ModelSet
from studio.models.wan.experts import as_low_expert, claims_expert, expert_pairs
from studio.models.wan.identify import FAMILY_NAME
from studio.models.wan.keys import DIT, TEXT_ENCODER, TOKENIZER, VAE
from studio.models.wan.presets import EXPERT_RELEASES, VARIANTS, WanVariant

ROLES = (DIT, VAE, TEXT_ENCODER, TOKENIZER)
_ROLE_NAMES = {DIT: "Wan DiT", VAE: "VAE", TEXT_ENCODER: "UMT5 text encoder",
               TOKENIZER: "tokenizer folder"}  # fmt: skip


def set_root(directory: Path) -> Path | None:
    """``google/umt5-xxl`` (the published tokenizer folder) and A14B's ``high_noise_model/`` /
    ``low_noise_model/`` join the set above them."""
    if directory.parent.name == "google":
        return directory.parent.parent
    return directory.parent if directory.name in ("high_noise_model", "low_noise_model") else None


def assemble(root: Path, found: FolderFindings) -> list[ModelSet]:
    """One set per DiT, or per pair of A14B experts, in the folder (one set when there is at
    most one)."""
    pairs, singles = expert_pairs([c for c in found.components if c.role == DIT])
    heads: list[tuple[Component | None, Component | None]] = [*pairs, *((d, None) for d in singles)]
    if len(heads) <= 1:
        dit, low = heads[0] if heads else (None, None)
        return [_make_set(str(root), root, dit, found, low)]
    return [_make_set(str(dit.path), root, dit, found, low) for dit, low in heads]


def _preference(component: Component, dit: Component | None) -> tuple[int, str]:
    """Sort key among candidates for one role: the one that fits ``dit`` first."""
    if component.role == TOKENIZER:
        return (0 if "umt5" in str(component.path).lower() else 1, str(component.path))
    wanted = None if dit is None else (
        _latent_channels(dit) if component.role == VAE else dit.context_dim)
    return (0 if wanted in (None, component.channels) else 1, str(component.path))


def _make_set(set_id: str, root: Path, dit: Component | None, found: FolderFindings,
              low: Component | None = None) -> ModelSet:
    """A set around ``dit`` (with ``low``, the low-noise expert of a pair)."""
    variant = _variant_of(dit, low)
    if dit is not None and variant is not None:
        dit = replace(dit, variant=variant.name)
    chosen = [dit] if dit else []
    if low is not None:
        chosen.append(as_low_expert(replace(low, variant=variant.name if variant else "-")))
    for role in (VAE, TEXT_ENCODER, TOKENIZER):
        candidates = [c for c in found.components if c.role == role]
        if candidates:
            chosen.append(min(candidates, key=lambda c: _preference(c, dit)))
    spare = [c for c in found.components if c not in chosen and c.role != DIT]
    problems = pairing_problems(root, dit, variant, chosen)
    roles = (*ROLES, DIT_LOW) if variant is not None and variant.experts else ROLES
    complete = all(any(c.role == role for c in chosen) for role in roles)
    notes = list(found.ignored) + [f"{c.path}: spare {_ROLE_NAMES[c.role]}, not used"
                                   for c in spare]
    (problems if not complete or problems else notes).extend(found.errors)
    return ModelSet(
        id=set_id, family=FAMILY_NAME, variant=variant.name if variant else "-",
        components=tuple(chosen), dtype=dit.dtype if dit else "-",
        size=sum(c.size for c in chosen), complete=complete, problems=tuple(problems),
        notes=tuple(notes), name=f"{variant.title} — {root.name}" if variant else root.name,
    )  # fmt: skip


def pairing_problems(
    root: Path, dit: Component | None, variant: WanVariant | None, chosen: list[Component]
) -> list[str]:
    """Why the chosen parts cannot run together, naming the files (empty when they can)."""
    parts = {c.role: c for c in chosen}
    if dit is None:
        return [f"no Wan DiT (diffusion_pytorch_model*.safetensors) in {root}"] if chosen else []
    problems = _variant_problems(dit, variant) + _expert_problems(dit, variant, parts)
    needs = f"{variant.title} needs the Wan {variant.vae_version} VAE ({variant.vae_file})" \
        if variant else "use the VAE published with this DiT"
    vae, text = parts.get(VAE), parts.get(TEXT_ENCODER)
    latent = variant.latent_channels if variant is not None else dit.channels
    if vae is None:
        problems.append(f"no VAE in {root}: {needs}")
    elif vae.channels != latent:
        problems.append(f"the VAE in {vae.path} has {vae.channels} latent channels but the DiT "
                        f"in {dit.path} makes {latent}: {needs}")
    if text is None:
        problems.append(f"no UMT5 text encoder in {root}: Wan needs "
                        "models_t5_umt5-xxl-enc-bf16.pth (or a text_encoder/ folder)")
    elif text.channels != dit.context_dim:
        problems.append(f"the text encoder in {text.path} gives {text.channels}-wide features "
                        f"but the DiT in {dit.path} takes {dit.context_dim}: Wan needs the "
                        "UMT5-XXL encoder (models_t5_umt5-xxl-enc-bf16.pth)")
    if TOKENIZER not in parts:
        problems.append(f"no tokenizer folder in {root}: Wan needs google/umt5-xxl "
                        "(tokenizer.json / spiece.model)")
    problems += [c.problem for c in chosen if c.problem and c.role != DIT]
    return problems


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
    if not variant.supported:
        return [f"{dit.path} is {variant.title}, which Flow Studio does not run (it needs a "
                "CLIP image encoder); use Wan 2.1 T2V or Wan 2.2 TI2V-5B"]
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
