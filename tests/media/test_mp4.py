"""MP4 header parsing on hand-built box layouts and on a real file checked with PyAV."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import av
import numpy as np
import pytest

from studio.errors import MediaError
from studio.media.mp4 import VideoTrack, comment_tag, read_moov, video_track
from studio.media.video import read_video_metadata, write_video


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def large_box(kind: bytes, payload: bytes) -> bytes:
    """A box with the 64-bit size form (size field 1, then the real size)."""
    return struct.pack(">I", 1) + kind + struct.pack(">Q", 16 + len(payload)) + payload


def full_box(kind: bytes, version: int, payload: bytes) -> bytes:
    return box(kind, bytes([version, 0, 0, 0]) + payload)


def handler(kind: bytes) -> bytes:
    return full_box(b"hdlr", 0, b"\0" * 4 + kind + b"\0" * 12 + b"name\0")


def track(handler_kind: bytes, size: tuple[int, int], mdhd_version: int) -> bytes:
    """A track: 10 samples of 512 ticks + 1 of 1024 at timescale 12288 → 11 frames, 22 fps."""
    if mdhd_version == 0:
        mdhd = full_box(b"mdhd", 0, struct.pack(">IIIII", 0, 0, 12288, 6144, 0))
    else:
        mdhd = full_box(b"mdhd", 1, struct.pack(">QQIQI", 0, 0, 12288, 6144, 0))
    entry = box(b"avc1", b"\0" * 6 + struct.pack(">H", 1) + b"\0" * 16 + struct.pack(">HH", *size))
    stsd = full_box(b"stsd", 0, struct.pack(">I", 1) + entry + b"\0" * 50)
    stts = full_box(b"stts", 0, struct.pack(">IIIII", 2, 10, 512, 1, 1024))
    minf = box(b"minf", box(b"stbl", stsd + stts))
    mdia = box(b"mdia", mdhd + handler(handler_kind) + minf)
    return box(b"trak", box(b"tkhd", b"\0" * 84) + mdia)


def udta(text: str, *, iso_meta: bool = True, data_type: int = 1,
         encoder: str = '{"not": "the comment"}') -> bytes:
    """A ``udta`` holding ``text`` as the comment (©cmt) and, distinct from it, an encoder tag
    (©too), so that reading the wrong tag shows."""

    def data(value: str) -> bytes:
        return box(b"data", struct.pack(">II", data_type, 0) + value.encode("utf-8"))

    inner = handler(b"mdir") + box(b"ilst", box(b"\xa9too", data(encoder))
                                   + box(b"\xa9cmt", data(text)))  # fmt: skip
    meta = full_box(b"meta", 0, inner) if iso_meta else box(b"meta", inner)
    return box(b"udta", meta)


FTYP = box(b"ftyp", b"isom\0\0\x02\0isomavc1")


def test_movie_header_after_large_media_data(tmp_path: Path) -> None:
    tracks = track(b"soun", (0, 0), 0) + track(b"vide", (320, 176), 1)
    moov = box(b"moov", tracks + udta('{"a": 1}'))
    path = tmp_path / "late.mp4"
    path.write_bytes(FTYP + large_box(b"mdat", b"\x55" * 5000) + box(b"free") + moov)
    assert read_moov(path) == moov
    assert video_track(moov) == VideoTrack(width=320, height=176, frames=11, fps=22.0)
    assert read_video_metadata(path) == {"a": 1}


def test_quicktime_style_meta_and_media_data_to_end_of_file(tmp_path: Path) -> None:
    moov = box(b"moov", track(b"vide", (64, 48), 0) + udta('{"b": "ü"}', iso_meta=False))
    path = tmp_path / "qt.mov"
    path.write_bytes(FTYP + moov + struct.pack(">I", 0) + b"mdat" + b"\0" * 300)
    assert comment_tag(read_moov(path)) == '{"b": "ü"}'
    assert read_video_metadata(path) == {"b": "ü"}
    assert video_track(read_moov(path)) == VideoTrack(64, 48, 11, 22.0)


def test_non_text_comment_and_missing_pieces() -> None:
    assert comment_tag(box(b"moov", udta("{}", data_type=0))) is None  # binary, not UTF-8
    assert comment_tag(box(b"moov", track(b"vide", (8, 8), 0))) is None  # no udta
    assert video_track(box(b"moov", track(b"soun", (0, 0), 0))) is None  # audio only
    assert video_track(box(b"moov")) is None


def test_truncated_header_is_damaged(tmp_path: Path) -> None:
    moov = box(b"moov", track(b"vide", (64, 48), 0))
    (tmp_path / "cut.mp4").write_bytes(FTYP + moov[:-10])
    with pytest.raises(MediaError, match="damaged"):
        read_moov(tmp_path / "cut.mp4")
    (tmp_path / "nomoov.mp4").write_bytes(FTYP + box(b"mdat", b"\0" * 64))
    with pytest.raises(MediaError, match="no movie header"):
        read_moov(tmp_path / "nomoov.mp4")


def test_real_file_agrees_with_pyav(tmp_path: Path) -> None:
    path = tmp_path / "real.mp4"
    frames = np.zeros((5, 20, 30, 3), np.uint8)
    write_video(path, frames, 12.5, metadata={"x": [1, 2]})
    info = video_track(read_moov(path))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert info == VideoTrack(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            frames=stream.frames,
            fps=float(stream.average_rate),
        )
        assert json.loads(container.metadata["comment"]) == {"x": [1, 2]}
    assert info == VideoTrack(30, 20, 5, 12.5)


def test_the_comment_tag_is_read_whatever_comes_before_it() -> None:
    moov = box(b"moov", track(b"vide", (8, 8), 0) + udta('{"recipe": 1}', encoder="Lavf61"))
    assert comment_tag(moov) == '{"recipe": 1}'


def test_a_comment_written_by_another_tool_is_read(tmp_path: Path) -> None:
    """An MP4 made by PyAV (libavformat's muxer, not the studio's writer) with our comment."""
    path = tmp_path / "pyav.mp4"
    with av.open(str(path), "w") as container:
        container.metadata["comment"] = json.dumps({"request": {"prompt": "from pyav"}})
        container.metadata["title"] = "something else"
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert read_video_metadata(path) == {"request": {"prompt": "from pyav"}}
    assert video_track(read_moov(path)) == VideoTrack(32, 32, 3, 8.0)
