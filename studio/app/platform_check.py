"""Before Qt starts on Linux: are the system libraries of Qt's xcb platform plugin there?

The PySide6 wheel ships Qt but not the X11 helper libraries its xcb plugin links. Without them
Qt names one missing library (at best) and aborts the process, so the user installs packages one
by one. ``ldd`` on the plugin lists every library the loader cannot find; a small table turns
them into the Debian/Ubuntu and Fedora packages to install. When anything here cannot tell
(no ``ldd``, no plugin file), the check finds nothing and the launch goes ahead.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

Runner = Callable[[Path], str]
"""Runs ``ldd`` on one file and returns its output; raises OSError or SubprocessError."""

# soname -> (Debian/Ubuntu package, Fedora package); names only, ldd decides what is missing.
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
}


@dataclass(frozen=True)
class MissingLibraries:
    """What the xcb plugin lacks: the sonames ldd could not find and the commands that fix it
    (an empty command when no missing soname is in :data:`PACKAGES`)."""

    sonames: tuple[str, ...]
    apt_command: str
    dnf_command: str


def xcb_applies(env: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether Qt will load its xcb plugin: on Linux, asked for by QT_QPA_PLATFORM, or chosen by
    default on an X11 display. In a Wayland session Qt picks its Wayland plugin instead."""
    if not platform.startswith("linux"):
        return False
    requested = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0].strip()
    if requested:
        return requested == "xcb"
    wayland = env.get("XDG_SESSION_TYPE") == "wayland" and bool(env.get("WAYLAND_DISPLAY"))
    return bool(env.get("DISPLAY")) and not wayland


def _qt_dirs() -> list[Path]:
    """Qt's directories as Qt reports them, then as the PySide6 package lays them out (the
    two differ in a frozen build); no QApplication is needed for either."""
    import PySide6
    from PySide6.QtCore import QLibraryInfo

    reported = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)).parent
    return [reported, Path(PySide6.__file__).resolve().parent / "Qt"]


def xcb_plugin_files(qt_dirs: Iterable[Path] | None = None) -> list[Path]:
    """The xcb plugin and the libQt6XcbQpa library it links, from the first Qt directory that
    holds the plugin; empty when none does."""
    for qt in _qt_dirs() if qt_dirs is None else qt_dirs:
        plugin = qt / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return [plugin, *sorted((qt / "lib").glob("libQt6XcbQpa.so*"))[:1]]
    return []


def run_ldd(path: Path) -> str:
    """``ldd path``'s output; raises when ldd is absent, fails or hangs."""
    done = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=20,
                          check=True)
    return done.stdout


def not_found(ldd_output: str) -> list[str]:
    """The sonames ldd marks ``=> not found``, in order of appearance."""
    return [line.split("=>", 1)[0].strip() for line in ldd_output.splitlines()
            if line.rstrip().endswith("=> not found")]


def install_commands(sonames: Iterable[str]) -> tuple[str, str]:
    """The ``sudo apt install`` and ``sudo dnf install`` lines for the known sonames."""
    known = [PACKAGES[name] for name in sonames if name in PACKAGES]
    apt = list(dict.fromkeys(debian for debian, _ in known))
    dnf = list(dict.fromkeys(fedora for _, fedora in known))
    return (f"sudo apt install {' '.join(apt)}" if apt else "",
            f"sudo dnf install {' '.join(dnf)}" if dnf else "")


def check_xcb_libraries(env: Mapping[str, str] | None = None, runner: Runner = run_ldd,
                        files: list[Path] | None = None) -> MissingLibraries | None:
    """What the xcb plugin cannot load, or None when it will load, Qt will not use it, or ldd
    cannot tell."""
    if not xcb_applies(os.environ if env is None else env):
        return None
    missing: list[str] = []
    for path in xcb_plugin_files() if files is None else files:
        try:
            missing += not_found(runner(path))
        except (OSError, subprocess.SubprocessError) as exc:
            log.info("cannot check the libraries of %s (%s); starting anyway", path, exc)
            return None
    if not missing:
        return None
    sonames = tuple(dict.fromkeys(missing))
    return MissingLibraries(sonames, *install_commands(sonames))


def format_message(found: MissingLibraries) -> str:
    """The message for the terminal: what is missing and the commands that install it."""
    lines = ["Flow Studio cannot open its window: Qt's xcb platform plugin cannot load because "
             "these system libraries are missing:", *(f"  {name}" for name in found.sonames),
             "Install them, then run studio again:"]
    if found.apt_command:
        lines += [f"  Debian/Ubuntu:  {found.apt_command}",
                  f"  Fedora:         {found.dnf_command}"]
    for name in (name for name in found.sonames if name not in PACKAGES):
        lines.append(f"  {name}: find its package with `apt-file search {name}` "
                     f"or `dnf provides '*/{name}'`")
    lines.append("QT_QPA_PLATFORM=offscreen is not a fix for a desktop: it hides the error and "
                 "draws no window.")
    return "\n".join(lines)
