"""What a recipe from elsewhere may point at: only what the user has, or confirms.

A recipe — a JSON file, or the one inside an MP4 someone sent — names a model set and reference
images by path. Followed blindly, ``model: "/"`` would scan the whole file system and an image
path could read any file. So a recipe's model must be one of the user's known sets (built in, or
found in the configured model folders), and its reference images must sit beside the recipe
(relative paths are read from the recipe's folder); anything else needs the user's confirmation
(``--model`` / ``--image`` / ``--trust-recipe-paths`` on the command line; in the app, loading
the model or dropping the image).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path

from studio.engine.request import GenerationRequest
from studio.service.recipe import read_recipe


@dataclass(frozen=True, slots=True)
class RecipeCheck:
    """A recipe's request with what needs confirmation taken out.

    Attributes:
        request: the request with images resolved beside the recipe, the unknown model replaced
            by "" (the default) and images from elsewhere removed.
        unknown_model: the recipe's model id when it is none of the user's sets ("" otherwise).
        outside_images: resolved paths of reference images that are not beside the recipe.
        original: the request with every path resolved, for a user who confirmed them.
    """

    request: GenerationRequest
    unknown_model: str
    outside_images: tuple[str, ...]
    original: GenerationRequest

    def notes(self) -> list[str]:
        """What was not restored, in words (empty when everything was)."""
        notes = [f"the model {self.unknown_model} is not one of your model sets"] \
            if self.unknown_model else []
        notes += [f"the reference image {p} is not beside the recipe"
                  for p in self.outside_images]
        return notes


def check_recipe(request: GenerationRequest, recipe_path: Path,
                 known_models: Collection[str]) -> RecipeCheck:
    """Split ``request`` (read from ``recipe_path``) into what may be used as is and what needs
    the user's confirmation."""
    base = Path(recipe_path).expanduser().absolute().parent.resolve()
    kept, outside, resolved = [], [], []
    for item in request.conditioning:
        path = Path(item.image).expanduser()
        path = (path if path.is_absolute() else base / path).resolve()
        resolved.append(replace(item, image=str(path)))
        if path.is_relative_to(base):
            kept.append(resolved[-1])
        else:
            outside.append(str(path))
    unknown = request.model if request.model and request.model not in known_models else ""
    original = request.with_changes(conditioning=tuple(resolved))
    trusted = original.with_changes(conditioning=tuple(kept), model="" if unknown else
                                    request.model)
    return RecipeCheck(trusted, unknown, tuple(outside), original)


def absolute_paths(request: GenerationRequest, base: Path | None = None) -> GenerationRequest:
    """``request`` with every reference image and LoRA path absolute and resolved (relative ones
    against ``base``, default the current folder), so a job runs the same from any folder."""
    root = (base or Path.cwd()).absolute()

    def absolute(path: str) -> str:
        return str((root / Path(path).expanduser()).resolve())

    items = tuple(replace(item, image=absolute(item.image)) for item in request.conditioning)
    loras = tuple(replace(item, path=absolute(item.path)) for item in request.loras)
    return request.with_changes(conditioning=items, loras=loras)


def read_checked_recipe(path: Path, known_models: Collection[str]) -> RecipeCheck:
    """Read a recipe (JSON or MP4) and check it against the ids of the user's model sets."""
    return check_recipe(read_recipe(Path(path)), Path(path), known_models)
