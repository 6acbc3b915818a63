"""MP4 export/import, checked with an independent decoder (PyAV) and an independent writer."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import studio.media.video as video
from studio.engine.cancel import CancelToken
from studio.errors import Cancelled, MediaError
from studio.media.video import read_video, read_video_metadata, write_video

RECIPE = {
    "prompt": "Ein Kätzchen 🐈 im Café — 猫が走る; a=b # not a comment \\ back\nslash",
    "seed": 1234567890123,
    "steps": 30,
    "guidance": 5.0,
    "conditioning": [{"frame_index": 0, "strength": 0.75}],
}


def moving_gradient(frames: int, height: int, width: int) -> np.ndarray:
    """Smooth RGB gradients that drift over time: uint8 ``[T, H, W, 3]``."""
    t = np.arange(frames, dtype=np.float64)[:, None, None]
    y = np.arange(height, dtype=np.float64)[None, :, None]
    x = np.arange(width, dtype=np.float64)[None, None, :]
    red = 30 + 190 * x / width + 3 * t + 0 * y
    green = 40 + 170 * y / height + 0 * x + 0 * t
    blue = 128 + 60 * np.sin((x + y) / 25 + t / 4)
    return np.stack(np.broadcast_arrays(red, green, blue), -1).round().astype(np.uint8)


@dataclass(frozen=True)
class StreamFacts:
    """What PyAV reports about the video stream, read while the container is open."""

    codec: str
    pix_fmt: str
    average_rate: Fraction | None


def decode_with_pyav(path: Path) -> tuple[np.ndarray, StreamFacts, dict, list]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = list(container.decode(video=0))
        frames = np.stack([f.to_ndarray(format="rgb24") for f in decoded])
        facts = StreamFacts(
            stream.codec_context.name, stream.codec_context.pix_fmt, stream.average_rate
        )
        return frames, facts, dict(container.metadata), decoded


def top_level_boxes(path: Path) -> list[bytes]:
    data, kinds, pos = path.read_bytes(), [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        kinds.append(kind)
        pos += size if size else len(data)
    return kinds


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".partial")]


class CancelAfter(CancelToken):
    """A token that sets itself on its ``n``-th check (a user pressing Cancel mid-export)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.checks = n, 0

    def check(self) -> None:
        self.checks += 1
        if self.checks >= self.n:
            self.set()
        super().check()


@pytest.mark.parametrize(("height", "width"), [(48, 64), (47, 65), (40, 33)])
def test_mp4_decodes_back_with_pyav(tmp_path: Path, height: int, width: int) -> None:
    frames = moving_gradient(9, height, width)
    path = tmp_path / "out.mp4"
    write_video(path, frames, 16, metadata=RECIPE)

    decoded, stream, container_meta, av_frames = decode_with_pyav(path)
    even_h, even_w = height + height % 2, width + width % 2
    assert decoded.shape == (9, even_h, even_w, 3)
    assert stream.codec == "h264"
    assert stream.pix_fmt == "yuv420p"
    assert stream.average_rate == 16
    assert av_frames[0].colorspace == 1 and av_frames[0].color_range == 1  # BT.709, TV range
    error = np.abs(decoded[:, :height, :width].astype(np.int16) - frames)
    assert error.mean() < 3.0
    # the padding repeats the last row / column
    pad_error = np.abs(decoded[:, -1, :width].astype(np.int16) - frames[:, -1])
    assert pad_error.mean() < 4.0
    pad_error = np.abs(decoded[:, :height, -1].astype(np.int16) - frames[:, :, -1])
    assert pad_error.mean() < 4.0
    # the recipe is in the container's comment tag, and readable without decoding
    assert json.loads(container_meta["comment"]) == RECIPE
    assert read_video_metadata(path) == RECIPE
    assert leftovers(tmp_path) == []


def test_frames_are_really_moving(tmp_path: Path) -> None:
    frames = moving_gradient(6, 32, 48)
    frames[3] = 255 - frames[3]  # a scene cut a decoder must reproduce at the right index
    write_video(tmp_path / "cut.mp4", frames, 8)
    decoded, *_ = decode_with_pyav(tmp_path / "cut.mp4")
    per_frame = np.abs(decoded.astype(np.int16) - frames).mean(axis=(1, 2, 3))
    assert per_frame.max() < 4.0
    assert np.abs(decoded[3].astype(np.int16) - frames[2]).mean() > 50


def test_faststart_puts_movie_header_first(tmp_path: Path) -> None:
    write_video(tmp_path / "fs.mp4", moving_gradient(4, 16, 16), 12)
    kinds = top_level_boxes(tmp_path / "fs.mp4")
    assert kinds[0] == b"ftyp"
    assert kinds.index(b"moov") < kinds.index(b"mdat")


def test_crf_controls_quality(tmp_path: Path) -> None:
    noisy = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    write_video(tmp_path / "lo.mp4", noisy, 8, crf=0)
    write_video(tmp_path / "hi.mp4", noisy, 8, crf=40)
    err_lo = np.abs(decode_with_pyav(tmp_path / "lo.mp4")[0].astype(np.int16) - noisy).mean()
    err_hi = np.abs(decode_with_pyav(tmp_path / "hi.mp4")[0].astype(np.int16) - noisy).mean()
    assert err_hi > err_lo + 5
    assert (tmp_path / "hi.mp4").stat().st_size < (tmp_path / "lo.mp4").stat().st_size


def test_read_video_round_trip(tmp_path: Path) -> None:
    frames = moving_gradient(7, 30, 41)
    path = tmp_path / "rt.mp4"
    write_video(path, frames, 24000 / 1001, metadata=RECIPE)

    got, fps, metadata = read_video(path)
    pyav_frames, stream, _, _ = decode_with_pyav(path)
    assert got.shape == (7, 30, 42, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(np.int16) - pyav_frames).max() <= 2  # two decoders agree
    assert np.abs(got[:, :, :41].astype(np.int16) - frames).mean() < 3.0
    assert stream.average_rate == Fraction(24000, 1001)
    assert fps == pytest.approx(24000 / 1001, rel=1e-9)
    assert metadata == RECIPE

    first, _, _ = read_video(path, max_frames=2)
    assert np.array_equal(first, got[:2])


def test_no_metadata_and_large_metadata(tmp_path: Path) -> None:
    write_video(tmp_path / "plain.mp4", moving_gradient(2, 16, 16), 16)
    assert read_video_metadata(tmp_path / "plain.mp4") is None
    assert read_video(tmp_path / "plain.mp4")[2] is None

    big = {"prompt": "ä=;#\\ " * 20_000, "list": list(range(2000))}
    write_video(tmp_path / "big.mp4", moving_gradient(2, 16, 16), 16, metadata=big)
    assert read_video_metadata(tmp_path / "big.mp4") == big


def _write_with_pyav(path: Path, comment: str) -> np.ndarray:
    """An independent MP4 writer: PyAV's own libx264 encoder and mp4 muxer."""
    frames = np.stack([np.full((16, 32, 3), 40 * i + 20, np.uint8) for i in range(3)])
    with av.open(str(path), "w") as container:
        container.metadata["comment"] = comment
        stream = container.add_stream("libx264", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frames


def test_reads_metadata_and_frames_from_other_writers(tmp_path: Path) -> None:
    frames = _write_with_pyav(tmp_path / "other.mp4", json.dumps({"seed": 7, "p": "ü"}))
    assert read_video_metadata(tmp_path / "other.mp4") == {"seed": 7, "p": "ü"}
    got, fps, metadata = read_video(tmp_path / "other.mp4")
    assert got.shape == (3, 16, 32, 3)
    assert np.abs(got.astype(np.int16) - frames).max() <= 3
    assert fps == 12.0 and metadata == {"seed": 7, "p": "ü"}

    _write_with_pyav(tmp_path / "text.mp4", "just a comment {")
    assert read_video_metadata(tmp_path / "text.mp4") is None
    _write_with_pyav(tmp_path / "list.mp4", "[1, 2]")
    assert read_video_metadata(tmp_path / "list.mp4") is None


def test_cancel_mid_write_leaves_no_file(tmp_path: Path) -> None:
    token = CancelAfter(4)
    with pytest.raises(Cancelled):
        write_video(tmp_path / "c.mp4", moving_gradient(10, 16, 16), 16, cancel=token)
    assert token.checks == 4
    assert list(tmp_path.iterdir()) == []


def test_cancel_does_not_clobber_existing_video(tmp_path: Path) -> None:
    path = tmp_path / "keep.mp4"
    write_video(path, moving_gradient(3, 16, 16), 16, metadata={"version": 1})
    before = path.read_bytes()
    with pytest.raises(Cancelled):
        write_video(path, moving_gradient(8, 32, 32), 16, metadata={"version": 2},
                    cancel=CancelAfter(3))
    assert path.read_bytes() == before
    assert read_video_metadata(path) == {"version": 1}
    assert leftovers(tmp_path) == []

    already = CancelToken()
    already.set()
    with pytest.raises(Cancelled):
        write_video(path, moving_gradient(2, 16, 16), 16, cancel=already)
    assert path.read_bytes() == before


def test_keyboard_interrupt_mid_write_leaves_no_file(tmp_path: Path) -> None:
    class Interrupt(CancelToken):
        def check(self) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_video(tmp_path / "k.mp4", moving_gradient(3, 16, 16), 16, cancel=Interrupt())
    assert list(tmp_path.iterdir()) == []


def test_encoder_failure_is_a_media_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = video._encode_command
    monkeypatch.setattr(
        video, "_encode_command", lambda *a: [s.replace("libx264", "no_such264") for s in real(*a)]
    )
    with pytest.raises(MediaError, match="could not be encoded") as info:
        write_video(tmp_path / "e.mp4", moving_gradient(2, 16, 16), 16)
    assert "e.mp4" in info.value.message and info.value.hint
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_disk_full_while_encoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = video._encode_command
    monkeypatch.setattr(video, "_encode_command", lambda *a: [*real(*a)[:-1], "file:/dev/full"])
    path = tmp_path / "full.mp4"
    path.write_bytes(b"previous")
    with pytest.raises(MediaError, match="disk is full"):
        write_video(path, moving_gradient(3, 16, 16), 16)
    assert path.read_bytes() == b"previous"
    assert leftovers(tmp_path) == []


def test_unreadable_inputs_are_media_errors(tmp_path: Path) -> None:
    write_video(tmp_path / "good.mp4", moving_gradient(3, 16, 16), 16, metadata=RECIPE)
    good = (tmp_path / "good.mp4").read_bytes()
    (tmp_path / "notes.txt").write_text("hello, this is not a video at all")
    (tmp_path / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "cut.mp4").write_bytes(good[:100])  # the header is cut short
    cases = {
        "missing.mp4": "does not exist",
        "notes.txt": "not an MP4",
        "picture.png": "not an MP4",
        "empty.mp4": "empty",
        "cut.mp4": "damaged",
        ".": "folder",
    }
    for name, why in cases.items():
        for reader in (read_video, read_video_metadata):
            with pytest.raises(MediaError, match=why) as info:
                reader(tmp_path / name)
            assert info.value.hint


def test_header_without_video_stream(tmp_path: Path) -> None:
    # a valid ISO file whose movie header has no tracks: metadata reads, frames do not
    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    (tmp_path / "hollow.mp4").write_bytes(box(b"ftyp", b"isom\0\0\2\0isom") + box(b"moov", b""))
    assert read_video_metadata(tmp_path / "hollow.mp4") is None
    with pytest.raises(MediaError, match="has no video track"):
        read_video(tmp_path / "hollow.mp4")
