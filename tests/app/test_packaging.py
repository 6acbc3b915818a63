"""The packaging files say what the build notes promise (checked on their text, no build)."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

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
