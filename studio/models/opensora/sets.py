"""Assemble the Open-Sora 2.0 parts of one folder into a set, with its pairing problems.

The published folder holds ``Open_Sora_v2.safetensors`` (the MMDiT), ``hunyuan_vae.safetensors``,
``google/t5-v1_1-xxl/`` and ``openai/clip-vit-large-patch14/``; the two encoder folders join the
set folder two levels up. Pairing: the VAE's latent channels × 2·2 = the MMDiT's channels in
(16 → 64), the T5 width = ``context_in_dim``, the CLIP width = ``vec_in_dim`` (checked on load,
where the config is read).
"""

from __future__ import annotations

from pathlib import Path

from studio.models.family import DIT, TEXT_ENCODER, VAE, Component, FolderFindings, ModelSet
from studio.models.opensora.identify import CLIP, FAMILY_NAME
from studio.models.opensora.presets import TITLE, VARIANT

ROLES = (DIT, VAE, TEXT_ENCODER, CLIP)
_FILES = {DIT: "Open_Sora_v2.safetensors", VAE: "hunyuan_vae.safetensors",
          TEXT_ENCODER: "the google/t5-v1_1-xxl folder",
          CLIP: "the openai/clip-vit-large-patch14 folder"}  # fmt: skip
_PUBLISHERS = ("google", "openai")


def set_root(directory: Path) -> Path | None:
    """``google/t5-v1_1-xxl`` and ``openai/clip-vit-large-patch14`` join the folder above."""
    if directory.parent.name == "openai":
        return directory.parent.parent
    return None


def assemble(root: Path, found: FolderFindings) -> list[ModelSet]:
    """One set per folder: the first part of each role (a folder part is found both as a
    folder and through its weights, so parts are taken once per path)."""
    unique = list({(c.role, c.path): c for c in [*found.components, *found.shared]}.values())
    chosen = [min((c for c in unique if c.role == role), key=_preference)
              for role in ROLES if any(c.role == role for c in unique)]
    parts = {c.role: c for c in chosen}
    problems = [f"no {_FILES[role]} in {root} (Open-Sora 2.0 needs {_FILES[role]})"
                for role in ROLES if role not in parts]
    problems += [c.problem for c in chosen if c.problem]
    problems += _pairing(parts)
    complete = all(role in parts for role in ROLES)
    (problems if problems or not complete else []).extend(found.errors)
    notes = list(found.ignored) + [f"{c.path}: spare part, not used"
                                   + (f" ({c.problem})" if c.problem else "")
                                   for c in unique if c not in chosen]
    dit = parts.get(DIT)
    return [ModelSet(id=str(root), family=FAMILY_NAME, variant=VARIANT if dit else "-",
                     components=tuple(chosen), dtype=dit.dtype if dit else "-",
                     size=sum(c.size for c in chosen), complete=complete,
                     problems=tuple(dict.fromkeys(problems)), notes=tuple(notes),
                     name=f"{TITLE} — {root.name}")]  # fmt: skip


def _preference(component: Component) -> tuple[int, str]:
    return (1 if component.problem else 0, str(component.path))


def _pairing(parts: dict[str, Component]) -> list[str]:
    """Why the chosen parts cannot run together, naming their files."""
    dit, vae, t5 = parts.get(DIT), parts.get(VAE), parts.get(TEXT_ENCODER)
    problems = []
    if dit is not None and vae is not None and not vae.problem and vae.channels * 4 != dit.channels:
        problems.append(f"the VAE in {vae.path} has {vae.channels} latent channels but the MMDiT "
                        f"in {dit.path} takes {dit.channels} (= channels × 2·2): use "
                        "hunyuan_vae.safetensors")
    if dit is not None and t5 is not None and t5.channels != dit.context_dim:
        problems.append(f"the T5 encoder in {t5.path} is {t5.channels} wide but the MMDiT in "
                        f"{dit.path} reads {dit.context_dim}: use google/t5-v1_1-xxl")
    return problems
