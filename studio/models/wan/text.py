"""The UMT5-XXL text encoder Wan is conditioned on, run through ``transformers``.

Weights load from either layout: a Hugging Face folder (``config.json`` + safetensors with
``encoder.block.N.layer…`` names) or Wan's own ``models_t5_umt5-xxl-enc-bf16.pth`` (a torch
pickle, loaded with ``weights_only=True``, keys remapped by :mod:`studio.models.wan.keys`). The
architecture is read from the tensor shapes; for the published sizes it is exactly the
``umt5-xxl`` configuration
(docs/families/wan.md §4). The tokenizer is the user's ``google/umt5-xxl``
folder (``AutoTokenizer``, local files only).

Encoding follows the original exactly: clean the prompt (ftfy if installed, HTML-unescape
twice, collapse whitespace), tokenize to 512 tokens with EOS, run the encoder with the padding
masked, keep each prompt's rows up to its true length (EOS included) and zero the rest.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import UMT5Config, UMT5EncoderModel

from studio.engine.cancel import NEVER, CancelToken
from studio.errors import CheckpointError
from studio.media.json_file import read_small_json
from studio.models import hf_folder
from studio.models.loading import load_module
from studio.models.wan.comfy import without_embedded_tokenizer
from studio.models.wan.keys import TEXT_ENCODER, UMT5_TIED, identify_layout, key_map
from studio.models.weight_files import WeightFiles

log = logging.getLogger(__name__)

#: Tokens per prompt; the DiT's context is always this long.
TEXT_LEN = 512

_XXL = {"vocab_size": 256384, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24,
        "num_heads": 64, "relative_attention_num_buckets": 32}  # fmt: skip
_USE_UMT5 = "use models_t5_umt5-xxl-enc-bf16.pth or a UMT5 encoder folder"
_BLOCK = re.compile(r"^encoder\.block\.(\d+)\.layer\.0\.layer_norm\.weight$")


def umt5_config(**sizes: Any) -> UMT5Config:
    """A UMT5 encoder configuration; without arguments, ``google/umt5-xxl`` as Wan uses it.

    Gated-GELU feed-forward (tanh GELU), per-layer relative position bias with 32 buckets and
    maximum distance 128, RMSNorm eps 1e-6, no dropout.
    """
    values = {**_XXL, "relative_attention_max_distance": 128, "feed_forward_proj": "gated-gelu",
              "layer_norm_epsilon": 1e-6, "dropout_rate": 0.0, "is_encoder_decoder": False,
              "use_cache": False, "tie_word_embeddings": True, **sizes}  # fmt: skip
    return UMT5Config(**values)


def config_from_shapes(
    shapes: Mapping[str, Sequence[int]], extra: Mapping[str, Any] | None = None
) -> UMT5Config:
    """The encoder configuration implied by HF-layout tensor shapes (no data read).

    ``extra`` may supply what shapes cannot tell (``relative_attention_max_distance``,
    ``layer_norm_epsilon``, ``feed_forward_proj``), e.g. from a folder's ``config.json``.

    Raises:
        CheckpointError: when a tensor the sizes are read from is missing.
    """
    try:
        embedding = shapes.get("shared.weight") or shapes["encoder.embed_tokens.weight"]
        bias = shapes["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
        d_ff = shapes["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"][0]
        inner = shapes["encoder.block.0.layer.0.SelfAttention.q.weight"][0]
    except (KeyError, IndexError) as exc:
        raise CheckpointError(f"not a UMT5 encoder state dict (no {exc})", _USE_UMT5) from exc
    num_buckets, num_heads = bias
    sizes = {"vocab_size": embedding[0], "d_model": embedding[1], "d_kv": inner // num_heads,
             "d_ff": d_ff, "num_layers": sum(1 for key in shapes if _BLOCK.match(key)),
             "num_heads": num_heads, "relative_attention_num_buckets": num_buckets}  # fmt: skip
    known = ("relative_attention_max_distance", "layer_norm_epsilon", "feed_forward_proj")
    sizes.update({name: value for name, value in (extra or {}).items() if name in known})
    return umt5_config(**sizes)


def clean_prompt(text: str) -> str:
    """ftfy (when installed), HTML-unescape twice, strip, collapse whitespace runs to one space."""
    try:
        import ftfy  # optional, as in the original pipelines

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


class UMT5TextEncoder:
    """Wan's text encoder: prompts → context ``[B, 512, d_model]`` (4096 for UMT5-XXL).

    Rows past each prompt's token count (its EOS included) are exactly zero, as in the original
    pipeline, where the encoder output is trimmed and the DiT zero-pads it back to 512.
    """

    def __init__(self, model: UMT5EncoderModel, tokenizer: Any, text_len: int = TEXT_LEN) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.text_len = text_len

    @property
    def device(self) -> torch.device:
        return self.model.shared.weight.device

    @property
    def width(self) -> int:
        return int(self.model.config.d_model)

    def tokenize(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, both ``[B, text_len]`` int64, on the CPU."""
        batch = self.tokenizer([clean_prompt(p) for p in prompts], padding="max_length",
                               truncation=True, max_length=self.text_len, add_special_tokens=True,
                               return_attention_mask=True, return_tensors="pt")
        return batch["input_ids"], batch["attention_mask"]

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Encode prompts to ``[B, text_len, d_model]`` on the model's device and dtype."""
        ids, mask = self.tokenize(prompts)
        ids, mask = ids.to(self.device), mask.to(self.device)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        keep = mask.bool().unsqueeze(-1)
        return torch.where(keep, hidden, torch.zeros((), dtype=hidden.dtype, device=hidden.device))


def load_tokenizer(folder: Path) -> Any:
    """The tokenizer in the user's folder: local files only, never its code
    (:mod:`studio.models.hf_folder`)."""
    try:
        return hf_folder.load_tokenizer(folder)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - tokenizer back ends raise many types
        raise CheckpointError(
            f"{folder}: the tokenizer cannot be loaded ({str(exc).splitlines()[0][:200]})",
            "use the google/umt5-xxl tokenizer folder that ships with Wan",
        ) from exc


def load_umt5_encoder(
    weights: WeightFiles,
    tokenizer_dir: Path,
    *,
    device: torch.device | str,
    dtype: torch.dtype,
    cancel: CancelToken = NEVER,
) -> UMT5TextEncoder:
    """Load the encoder from either layout onto ``device`` in ``dtype``, plus its tokenizer.

    Raises:
        CheckpointError: the files are no UMT5 encoder, do not fit it, or the tokenizer's
            vocabulary is larger than the encoder's.
    """
    weights = without_embedded_tokenizer(weights)  # ComfyUI's spiece_model bytes: no weight
    layout = identify_layout(weights.tensors())
    if layout is None or layout.role != TEXT_ENCODER:
        raise CheckpointError(f"{weights.label} is not a UMT5 text encoder", _USE_UMT5)
    mapping = key_map(layout, weights.tensors())
    shapes = {mapping[key]: shape for key, shape in weights.shapes().items() if key in mapping}
    config = config_from_shapes(shapes, _folder_config(weights.paths[0].parent))
    tokenizer = load_tokenizer(tokenizer_dir)
    if len(tokenizer) > config.vocab_size:
        raise CheckpointError(
            f"the tokenizer in {tokenizer_dir} has {len(tokenizer)} tokens but the text encoder "
            f"in {weights.label} knows {config.vocab_size}",
            "use the google/umt5-xxl tokenizer with the UMT5-XXL encoder",
        )
    model = load_module(lambda: UMT5EncoderModel(config), weights, mapping, device=device,
                        dtype=dtype, tied=UMT5_TIED, what="UMT5 text encoder", cancel=cancel)
    log.info("UMT5 encoder: %d layers, width %d, vocabulary %d", config.num_layers,
             config.d_model, config.vocab_size)
    return UMT5TextEncoder(model, tokenizer)


def _folder_config(folder: Path) -> dict[str, Any]:
    """A UMT5/T5 ``config.json`` beside the weights (HF layout), or {}."""
    data = read_small_json(folder / "config.json")
    is_t5 = isinstance(data, dict) and data.get("model_type") in ("umt5", "t5")
    return data if is_t5 else {}
