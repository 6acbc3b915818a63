"""diffusers' ``LTXConditionPipeline`` over a tiny random LTX-Video set, for parity tests.

The set is written in the diffusers layout with ``model_index.json`` naming
``LTXConditionPipeline``, so the studio loads it with causal temporal positions — what that
pipeline always applies (``_scale_video_ids``). The pipeline is built from the set's own
``transformer/`` and ``vae/`` folders, a plain Euler scheduler (shift 1, so the explicit times
pass through unchanged) and no text encoder: the tests hand it the prompt embeddings.

Randomness is scripted (:func:`script_noise`): the pipeline draws its initial noise with
``randn_tensor`` (it ignores ``latents=`` unless ``denoise_strength < 1``: ``prepare_latents``),
then one draw per keyframe after frame 0; and it samples the VAE posterior
(``retrieve_latents``), where the studio takes the posterior mean.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from tests.models.ltx.tiny_ltx import write_diffusers_set

PIPELINE_MODULE = "diffusers.pipelines.ltx.pipeline_ltx_condition"


def write_condition_set(root: Path) -> Path:
    """A tiny diffusers-layout set whose ``model_index.json`` names ``LTXConditionPipeline``;
    returns its folder."""
    folder = write_diffusers_set(root)
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    index["_class_name"] = "LTXConditionPipeline"
    index_path.write_text(json.dumps(index), encoding="utf-8")
    return folder


def condition_pipeline(folder: Path):  # noqa: ANN201 - diffusers is a test-only import
    """``LTXConditionPipeline`` (float32, CPU) over the set's transformer and VAE."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXVideoTransformer3DModel,
    )

    transformer = LTXVideoTransformer3DModel.from_pretrained(folder / "transformer").eval()
    vae = AutoencoderKLLTXVideo.from_pretrained(folder / "vae").eval()
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    return LTXConditionPipeline(scheduler=scheduler, vae=vae, text_encoder=None,
                                tokenizer=None, transformer=transformer)  # fmt: skip


@contextmanager
def script_noise(draws: list[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    """Inside the block the pipeline's ``randn_tensor`` returns ``draws`` in order (each must
    have the requested shape) and its VAE encodings take the posterior mean. Yields the list of
    draws still unused (empty after a run that drew them all)."""
    import diffusers.pipelines.ltx.pipeline_ltx_condition as module

    queue = list(draws)
    original_randn, original_retrieve = module.randn_tensor, module.retrieve_latents

    def scripted(shape: tuple[int, ...], **kwargs: object) -> torch.Tensor:
        draw = queue.pop(0)
        assert tuple(draw.shape) == tuple(shape), f"draw {tuple(draw.shape)} for {shape}"
        return draw.clone()

    def mean(encoder_output: object, generator: object = None,
             sample_mode: str = "argmax") -> torch.Tensor:
        return original_retrieve(encoder_output, generator, sample_mode="argmax")

    module.randn_tensor, module.retrieve_latents = scripted, mean
    try:
        yield queue
    finally:
        module.randn_tensor, module.retrieve_latents = original_randn, original_retrieve
