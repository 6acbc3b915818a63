"""Atomic writers: complete new file or untouched old file, never a partial one."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path

import pytest

from studio.errors import Cancelled, MediaError
from studio.media import atomic
from studio.media.atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)

OLD = b"the previous, complete file\n"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


@pytest.fixture
def existing(tmp_path: Path) -> Path:
    path = tmp_path / "state.json"
    path.write_bytes(OLD)
    return path


def test_write_bytes_text_json_round_trip(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01\xffdata")
    atomic_write_text(tmp_path / "b.txt", "zwei Zeilen\nnaïve ☕\n")
    obj = {"prompt": "猫 in a café", "seed": 42, "steps": [1.0, 0.5], "nested": {"ok": True}}
    atomic_write_json(tmp_path / "c.json", obj)

    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01\xffdata"
    assert (tmp_path / "b.txt").read_bytes() == "zwei Zeilen\nnaïve ☕\n".encode()
    raw = (tmp_path / "c.json").read_bytes()
    assert json.loads(raw.decode("utf-8")) == obj
    assert "猫".encode() in raw  # readable UTF-8, not \u escapes
    assert raw.endswith(b"\n")
    assert _leftovers(tmp_path) == []


def test_overwrites_existing_file(existing: Path) -> None:
    atomic_write_json(existing, {"v": 2})
    assert json.loads(existing.read_text("utf-8")) == {"v": 2}
    assert _leftovers(existing.parent) == []


def test_large_payload_written_completely(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    atomic_write_bytes(tmp_path / "big.bin", data)
    assert (tmp_path / "big.bin").read_bytes() == data


def test_short_os_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    calls = []

    def trickle(fd: int, data: bytes) -> int:
        calls.append(len(data))
        return real_write(fd, bytes(data[:5]))

    monkeypatch.setattr(os, "write", trickle)
    atomic_write_bytes(tmp_path / "t.bin", b"0123456789abcdefghij-")
    monkeypatch.undo()
    assert (tmp_path / "t.bin").read_bytes() == b"0123456789abcdefghij-"
    assert len(calls) == 5


def test_temp_file_is_beside_target_with_recognisable_name(existing: Path) -> None:
    with atomic_path(existing) as tmp:
        assert tmp.parent == existing.parent
        assert re.fullmatch(r"\.state\.json\.[0-9a-f]{12}\.partial", tmp.name)
        assert tmp.exists() and tmp.stat().st_size == 0
        tmp.write_bytes(b"new")
        assert existing.read_bytes() == OLD  # not replaced before the block ends
    assert existing.read_bytes() == b"new"
    assert not tmp.exists()


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_new_file_gets_ordinary_permissions(tmp_path: Path) -> None:
    old_mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "perm.txt", "x")
    finally:
        os.umask(old_mask)
    assert (tmp_path / "perm.txt").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "error",
    [RuntimeError("encoder crashed"), Cancelled(), KeyboardInterrupt()],
    ids=["error", "cancelled", "keyboard-interrupt"],
)
def test_failure_in_block_keeps_previous_file(existing: Path, error: BaseException) -> None:
    with pytest.raises(type(error)), atomic_path(existing) as tmp:
        tmp.write_bytes(b"half a fi")
        raise error
    assert existing.read_bytes() == OLD
    assert _leftovers(existing.parent) == []


def test_failure_without_previous_file_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(Cancelled), atomic_path(tmp_path / "new.mp4") as tmp:
        tmp.write_bytes(b"partial")
        raise Cancelled()
    assert list(tmp_path.iterdir()) == []


def test_disk_full_during_os_write(existing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    state = {"calls": 0}

    def fill_disk(fd: int, data: bytes) -> int:
        state["calls"] += 1
        if state["calls"] == 1:
            return real_write(fd, bytes(data[:4]))  # some bytes land, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", fill_disk)
    with pytest.raises(MediaError) as info:
        atomic_write_json(existing, {"a much longer": "replacement " * 50})
    monkeypatch.undo()

    assert state["calls"] == 2
    assert "disk is full" in info.value.message
    assert "state.json" in info.value.message
    assert "disk space" in info.value.hint
    assert isinstance(info.value.__cause__, OSError)
    assert existing.read_bytes() == OLD
    assert _leftovers(existing.parent) == []


def test_disk_full_from_file_object_in_block(existing: Path) -> None:
    with (
        pytest.raises(MediaError, match="disk is full"),
        atomic_path(existing) as tmp,
        open(tmp, "wb") as f,
    ):
        f.write(b"abc")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert existing.read_bytes() == OLD
    assert _leftovers(existing.parent) == []


def test_other_os_errors_propagate_unchanged(existing: Path) -> None:
    with pytest.raises(PermissionError), atomic_path(existing):
        raise PermissionError(errno.EACCES, "denied")
    assert existing.read_bytes() == OLD


def test_unserialisable_json_keeps_previous_file(existing: Path) -> None:
    with pytest.raises(TypeError):
        atomic_write_json(existing, {"bad": object()})
    with pytest.raises(ValueError):
        atomic_write_json(existing, {"nan": float("nan")})
    assert existing.read_bytes() == OLD
    assert _leftovers(existing.parent) == []


def test_missing_folder_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as info:
        atomic_write_text(tmp_path / "nope" / "x.txt", "x")
    assert str(tmp_path / "nope") in info.value.message
    assert info.value.hint


def test_target_that_cannot_be_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "inside.txt").write_text("keep")
    with pytest.raises(MediaError, match="Cannot replace"):
        atomic_write_text(folder, "x")
    assert (folder / "inside.txt").read_text() == "keep"
    assert _leftovers(tmp_path) == []


# --- durability: what reaches the disk, and in which order ------------------------------------


def _spy_durability(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """Record every ``os.fsync`` (as the kind of object its descriptor refers to) and every
    ``os.replace`` the atomic writer makes, in order, still doing them."""
    events: list[tuple[str, object]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        kind = "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(("fsync", (kind, os.fstat(fd).st_ino)))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("replace", (Path(src), Path(dst))))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    return events


def test_the_data_and_the_rename_are_flushed_in_order(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.json"
    events = _spy_durability(monkeypatch)
    atomic_write_bytes(target, b"payload")
    (fsync_file, (kind, inode)), (replace, (src, dst)), (fsync_dir, (dir_kind, dir_inode)) = events
    assert (fsync_file, kind) == ("fsync", "file") and inode == target.stat().st_ino
    assert replace == "replace" and dst == target and src.parent == target.parent
    assert src.name.startswith(".out.json.") and src.name.endswith(".partial")
    assert (fsync_dir, dir_kind, dir_inode) == ("fsync", "folder", tmp_path.stat().st_ino)


def test_a_kill_between_write_and_rename_leaves_the_old_file(
    existing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = existing.read_bytes()

    def killed(src, dst) -> None:
        raise KeyboardInterrupt  # the process dies right before the rename

    monkeypatch.setattr(atomic.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(existing, b"new content that must not appear")
    assert existing.read_bytes() == before
    assert [p.name for p in existing.parent.iterdir()] == [existing.name]
