"""Where the studio keeps its data and finds its bundled resources."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_APP_DIR_NAME = "FlowStudio"


def studio_home() -> Path:
    """The folder that holds settings, the job queue, history, latents and outputs.

    ``STUDIO_HOME`` overrides it (tests, portable installs); otherwise the platform's per-user
    application-data folder is used.
    """
    override = os.environ.get("STUDIO_HOME")
    if override:
        home = Path(override).expanduser()
    elif sys.platform == "win32":
        home = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / _APP_DIR_NAME
    elif sys.platform == "darwin":
        home = Path.home() / "Library" / "Application Support" / _APP_DIR_NAME
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        home = Path(base) / _APP_DIR_NAME
    home.mkdir(parents=True, exist_ok=True)
    return home


def resources_dir() -> Path:
    """The bundled ``resources/`` folder for editable, installed and frozen (PyInstaller) runs."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    candidates = []
    if frozen_root:
        candidates.append(Path(frozen_root) / "studio" / "resources")
    package_dir = Path(__file__).resolve().parent
    candidates += [package_dir / "resources", package_dir.parent / "resources"]
    for candidate in candidates:
        # "models" holds the shipped weights; style.qss is there even before they are added.
        if (candidate / "models").is_dir() or (candidate / "style.qss").is_file():
            return candidate
    raise FileNotFoundError(
        "Flow Studio's resources folder was not found; looked in "
        + ", ".join(str(c) for c in candidates)
    )


def shipped_model_dir(name: str) -> Path:
    """The folder of a model that ships with the studio (``resources/models/<name>``)."""
    return resources_dir() / "models" / name


def is_frozen() -> bool:
    """Whether this is the desktop bundle (PyInstaller), where pip cannot add anything."""
    return bool(getattr(sys, "frozen", False))


def reinstall_hint(package: str) -> str:
    """What a user can do about a missing or broken dependency: pip for an installed studio;
    for the bundle, which pip cannot change, getting the bundle again."""
    if is_frozen():
        return ("this Flow Studio bundle is incomplete: download it again, or report which file "
                "is missing")
    return f"reinstall it with: pip install --force-reinstall {package}"
