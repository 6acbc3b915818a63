"""The start-up check for the libraries of Qt's xcb plugin (ldd's output simulated)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from studio.app import main as app_main
from studio.app.platform_check import (
    MissingLibraries,
    check_xcb_libraries,
    format_message,
    xcb_applies,
    xcb_plugin_files,
)

X11 = {"DISPLAY": ":0"}
PLUGIN = Path("/qt/plugins/platforms/libqxcb.so")
XCBQPA = Path("/qt/lib/libQt6XcbQpa.so.6")

# As ldd prints it on Debian 12 with only python3 installed (abridged).
PLUGIN_LDD = """\
\tlinux-vdso.so.1 (0x00007ffd2b1f2000)
\tlibQt6XcbQpa.so.6 => /qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007f0c1c000000)
\tlibGL.so.1 => /lib/x86_64-linux-gnu/libGL.so.1 (0x00007f0c1bf79000)
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f0c1b990000)
\tlibEGL.so.1 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0c1c221000)
"""
XCBQPA_LDD = """\
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-shape.so.0 => not found
\tlibfoo-extra.so.7 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0c1b01e000)
"""
ALL_PRESENT = "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f0c1b990000)\n"


def fake_ldd(outputs: dict[Path, str], calls: list[Path] | None = None):
    def run(path: Path) -> str:
        if calls is not None:
            calls.append(path)
        return outputs[path]

    return run


def test_every_missing_library_and_its_packages_are_named() -> None:
    runner = fake_ldd({PLUGIN: PLUGIN_LDD, XCBQPA: XCBQPA_LDD})
    found = check_xcb_libraries(X11, runner, [PLUGIN, XCBQPA])
    assert found == MissingLibraries(
        sonames=("libxkbcommon-x11.so.0", "libxcb-cursor.so.0", "libxcb-icccm.so.4",
                 "libEGL.so.1", "libxcb-keysyms.so.1", "libxcb-shape.so.0", "libfoo-extra.so.7"),
        apt_command="sudo apt install libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libegl1 "
                    "libxcb-keysyms1 libxcb-shape0",
        dnf_command="sudo dnf install libxkbcommon-x11 xcb-util-cursor xcb-util-wm libglvnd-egl "
                    "xcb-util-keysyms libxcb",
    )
    message = format_message(found)
    for soname in found.sonames:
        assert f"\n  {soname}\n" in message
    assert "Qt's xcb platform plugin cannot load" in message
    assert "\n  Debian/Ubuntu:  sudo apt install libxkbcommon-x11-0 libxcb-cursor0 " in message
    assert "\n  Fedora:         sudo dnf install libxkbcommon-x11 xcb-util-cursor " in message
    assert "apt-file search libfoo-extra.so.7" in message
    assert "QT_QPA_PLATFORM=offscreen is not a fix for a desktop" in message


def test_fedora_packages_are_listed_once() -> None:
    ldd = "\tlibxcb-randr.so.0 => not found\n\tlibxcb-xkb.so.1 => not found\n"
    found = check_xcb_libraries(X11, fake_ldd({PLUGIN: ldd}), [PLUGIN])
    assert found is not None
    assert found.apt_command == "sudo apt install libxcb-randr0 libxcb-xkb1"
    assert found.dnf_command == "sudo dnf install libxcb"


def test_only_unknown_libraries_still_named() -> None:
    ldd = "\tlibfoo-extra.so.7 => not found\n"
    found = check_xcb_libraries(X11, fake_ldd({PLUGIN: ldd}), [PLUGIN])
    assert found == MissingLibraries(("libfoo-extra.so.7",), "", "")
    message = format_message(found)
    assert "\n  libfoo-extra.so.7\n" in message and "sudo apt" not in message


def test_nothing_missing_is_no_finding() -> None:
    calls: list[Path] = []
    runner = fake_ldd({PLUGIN: ALL_PRESENT, XCBQPA: ALL_PRESENT}, calls)
    assert check_xcb_libraries(X11, runner, [PLUGIN, XCBQPA]) is None
    assert calls == [PLUGIN, XCBQPA]


@pytest.mark.parametrize("error", [FileNotFoundError(2, "No such file or directory: 'ldd'"),
                                   subprocess.CalledProcessError(1, ["ldd"]),
                                   subprocess.TimeoutExpired(["ldd"], 20)])
def test_ldd_absent_or_failing_is_no_finding(error: Exception) -> None:
    def runner(_path: Path) -> str:
        raise error

    assert check_xcb_libraries(X11, runner, [PLUGIN]) is None


def test_real_runner_without_ldd_on_path_is_no_finding(monkeypatch, tmp_path) -> None:
    plugin = tmp_path / "libqxcb.so"
    plugin.write_bytes(b"")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert check_xcb_libraries(X11, files=[plugin]) is None


@pytest.mark.parametrize(
    ("env", "platform", "applies"),
    [
        ({"DISPLAY": ":0"}, "linux", True),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({"QT_QPA_PLATFORM": "xcb:nograb"}, "linux", True),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", False),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland"}, "linux", False),
        ({}, "linux", False),
        ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"},
         "linux", False),
        ({"DISPLAY": ":0"}, "darwin", False),
        ({"DISPLAY": ":0"}, "win32", False),
    ],
)
def test_when_qt_loads_the_xcb_plugin(env: dict[str, str], platform: str, applies: bool) -> None:
    assert xcb_applies(env, platform) is applies


def test_offscreen_skips_the_check() -> None:
    calls: list[Path] = []
    runner = fake_ldd({PLUGIN: PLUGIN_LDD}, calls)
    env = {"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}
    assert check_xcb_libraries(env, runner, [PLUGIN]) is None
    assert calls == []


def test_plugin_files_are_found_in_the_qt_directory(tmp_path) -> None:
    empty, qt = tmp_path / "empty", tmp_path / "Qt"
    (qt / "plugins" / "platforms").mkdir(parents=True)
    (qt / "lib").mkdir()
    (qt / "plugins" / "platforms" / "libqxcb.so").write_bytes(b"")
    (qt / "lib" / "libQt6XcbQpa.so.6").write_bytes(b"")
    assert xcb_plugin_files([empty, qt]) == [qt / "plugins" / "platforms" / "libqxcb.so",
                                             qt / "lib" / "libQt6XcbQpa.so.6"]
    assert xcb_plugin_files([empty]) == []


def test_run_app_exits_3_with_the_message_before_any_qapplication(monkeypatch, capsys) -> None:
    found = MissingLibraries(("libxcb-cursor.so.0", "libxcb-icccm.so.4"),
                             "sudo apt install libxcb-cursor0 libxcb-icccm4",
                             "sudo dnf install xcb-util-cursor xcb-util-wm")

    class NoQApplication:
        def __init__(self, *_args) -> None:
            raise AssertionError("QApplication must not be created")

        @staticmethod
        def instance() -> None:
            raise AssertionError("QApplication must not be looked up")

    monkeypatch.setattr(app_main, "check_xcb_libraries", lambda: found)
    monkeypatch.setattr(app_main, "QApplication", NoQApplication)
    assert app_main.run_app([]) == 3
    err = capsys.readouterr().err
    assert format_message(found) + "\n" in err
    assert "sudo apt install libxcb-cursor0 libxcb-icccm4" in err
    assert "sudo dnf install xcb-util-cursor xcb-util-wm" in err
