"""Hugging Face folders (tokenizers, text encoder configs) read without running their code.

transformers loads a class named by a folder's ``auto_map`` from a ``.py`` file in that folder
when asked to trust remote code — and, when nobody says, asks on the terminal. The studio never
trusts such code and never asks: a folder whose ``tokenizer_config.json`` or ``config.json``
names custom code is refused with a message, and every load passes ``trust_remote_code=False``.
Files that are not regular (a FIFO named ``tokenizer.json``) are refused before transformers
opens them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from studio.errors import CheckpointError
from studio.media.json_file import read_small_json
from studio.safe_files import kind_of

#: Files whose JSON may name custom code.
CODE_CONFIGS = ("tokenizer_config.json", "config.json")
_HINT = ("Flow Studio never runs code shipped in a model folder; use the tokenizer or encoder "
         "published with the model, without custom code")


def folder_problem(folder: Path) -> str:
    """Why the studio will not load this folder ("" when it may): a file that is not a regular
    file, or a config that asks for custom code."""
    folder = Path(folder)
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        return f"{folder} cannot be listed ({exc.strerror or exc})"
    for name in names:
        kind = kind_of(folder / name)
        if kind not in ("regular file", "folder"):
            return f"{folder / name} is a {kind}, not a regular file"
    for name in CODE_CONFIGS:
        code = _custom_code(read_small_json(folder / name)) if name in names else None
        if code:
            return f"{folder / name} asks to run Python code shipped with the folder ({code})"
    return ""


def check_folder(folder: Path) -> None:
    """Raise :class:`CheckpointError` with :func:`folder_problem`'s reason, if any."""
    problem = folder_problem(folder)
    if problem:
        raise CheckpointError(problem, _HINT)


def load_tokenizer(folder: Path) -> Any:
    """``AutoTokenizer`` from a checked folder: local files only, no custom code."""
    from transformers import AutoTokenizer

    check_folder(folder)
    path = str(folder)
    return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)


def load_model(folder: Path) -> Any:
    """``AutoModel`` from a checked folder: local files only, no custom code, and no progress
    bar of its own (the studio reports loading itself)."""
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    check_folder(folder)
    transformers_logging.disable_progress_bar()
    return AutoModel.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)


def _custom_code(config: Any) -> str:
    """What a config's ``auto_map`` (or a tokenizer class reference with a module path) names,
    or ""."""
    if not isinstance(config, dict):
        return ""
    auto_map = config.get("auto_map")
    if auto_map:
        return f"auto_map → {str(auto_map)[:120]}"
    return ""
