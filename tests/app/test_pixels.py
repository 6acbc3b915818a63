"""What the window shows, checked as pixels: the live preview canvas against x̂₀ computed here
from the denoiser's own inputs, and the player against the MP4 decoded by PyAV.

The tiny analytic model is made inexact for these tests (it predicts half the way to x₀), so x̂₀
changes from step to step: a preview frozen at one step, or one built from the noisy latent,
shows different pixels.
"""

from __future__ import annotations

import re

import av
import numpy as np
import torch
from PySide6.QtCore import QRect
from PySide6.QtGui import QImage

from studio.app.frame_canvas import FrameCanvas, fit_rect

from .conftest import run_job
from .tiny_family import PREVIEW, target_latent

TOLERANCE = 6  # uint8 levels: smooth scaling blends cells near their edges only


class HalfwayDenoiser:
    """v = (x − x₀) / (2t): x̂₀ = x − t·v = (x + x₀)/2, which moves as x does. Records each
    call's input x and t."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.clone(), t_tok.clone(), context.clone()))
        x0 = target_latent(context, x.shape).to(x.dtype)
        return (x - x0) / (2 * t_tok.clamp(min=1e-3)[:, None].to(x.dtype))


def expected_preview(x: torch.Tensor, context: torch.Tensor) -> np.ndarray:
    """x̂₀ = (x + x₀)/2 as RGB, written out here: Σ_c x_c·factor + bias → [0, 255]."""
    x0_hat = (x + target_latent(context, x.shape)) / 2
    weight = np.asarray(PREVIEW.rgb_factors, np.float64)  # [C, 3]
    rgb = np.einsum("cthw,ck->thwk", x0_hat[0].double().numpy(), weight) + PREVIEW.bias
    return np.clip(np.round((rgb + 1.0) / 2.0 * 255.0), 0, 255).astype(np.uint8)


def cell_colours(canvas: FrameCanvas, rows: int, cols: int) -> np.ndarray:
    """The canvas as drawn, read at the centre of each image cell: uint8 ``[rows, cols, 3]``."""
    grabbed = canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    scale = grabbed.width() / canvas.width()  # device pixels per widget pixel
    target = fit_rect(QRect(0, 0, canvas.width(), canvas.height()), cols, rows)
    out = np.zeros((rows, cols, 3), np.uint8)
    for r in range(rows):
        for c in range(cols):
            x = (target.x() + (c + 0.5) * target.width() / cols) * scale
            y = (target.y() + (r + 0.5) * target.height() / rows) * scale
            colour = grabbed.pixelColor(int(x), int(y))
            out[r, c] = (colour.red(), colour.green(), colour.blue())
    return out


def test_the_preview_shows_x0_hat_of_every_step(make_window, qtbot) -> None:
    window = make_window()
    denoiser = HalfwayDenoiser()
    window.test_model.denoiser = denoiser
    panel = window.prompt_panel
    panel.prompt.setPlainText("a blue stripe drifting")
    panel.steps.setValue(5)
    panel.guidance.setValue(1.0)  # one denoiser call per step: its input is the step's x
    shown: dict[int, tuple[int, np.ndarray]] = {}
    view = window.preview_view

    def grab(job_id: str, step: int, images: list) -> None:  # runs after the view's own slot
        frame = int(re.search(r"latent frame (\d+)/", view.caption.text()).group(1)) - 1
        rows, cols = images[0].height(), images[0].width()
        shown[step] = (frame, cell_colours(view.canvas, rows, cols))

    window.controller.preview.connect(grab)
    assert run_job(qtbot, window).kind == "finished"
    assert sorted(shown) == [1, 2, 3, 4, 5] and len(denoiser.calls) == 5
    for step in (1, 3, 5):
        x, _, context = denoiser.calls[step - 1]
        frame, pixels = shown[step]
        expected = expected_preview(x, context)[frame]
        assert np.abs(pixels.astype(int) - expected.astype(int)).max() <= TOLERANCE, step
    first, last = (expected_preview(*denoiser.calls[i][::2]) for i in (0, 4))
    assert np.abs(first.astype(int) - last.astype(int)).max() > 4 * TOLERANCE  # it moves


def test_the_player_shows_the_video_frames(make_window, qtbot) -> None:
    window = make_window()
    window.prompt_panel.prompt.setPlainText("a red stripe")
    with qtbot.waitSignal(window.result_shown, timeout=60_000) as shown:
        assert run_job(qtbot, window).kind == "finished"
    with av.open(shown.args[0]) as container:  # an independent decoder
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    player = window.player
    player.pause()
    height, width = frames[0].shape[:2]
    rows, cols = height // 8, width // 8  # one sample per 8×8 block: the VAE's upsampling
    for index in (0, len(frames) - 1):
        player.seek(index)
        assert player.frame_index == index
        blocks = frames[index][4::8, 4::8]
        drawn = cell_colours(player.canvas, rows, cols)
        assert np.abs(drawn.astype(int) - blocks.astype(int)).max() <= TOLERANCE, index
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).max() > 4 * TOLERANCE
