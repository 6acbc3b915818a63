"""The settings dialog's UMT5 tokenizer field: a folder that is no tokenizer keeps the dialog open
and says why; a good one is saved, and the model list is scanned again with it."""

from __future__ import annotations

from pathlib import Path

from studio.app.settings_dialog import SettingsDialog
from studio.service.settings import Settings, load_settings
from tests.models.tiny_wan import write_tokenizer


def test_the_dialog_refuses_a_folder_that_is_no_tokenizer(qtbot, tmp_path: Path) -> None:
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    dialog.show()
    assert "ComfyUI" in dialog.umt5_tokenizer.toolTip()
    dialog.umt5_tokenizer.setText(str(tmp_path))
    dialog.accept()
    assert dialog.isVisible()
    assert dialog.tokenizer_problem.text() == (f"{tmp_path} is not a tokenizer folder: it holds "
                                               "neither tokenizer.json nor spiece.model")
    good = write_tokenizer(tmp_path / "google" / "umt5-xxl")
    dialog.umt5_tokenizer.setText(f" {good} ")
    dialog.accept()
    assert not dialog.isVisible()
    assert dialog.settings().umt5_tokenizer == str(good)


def test_a_chosen_tokenizer_is_saved_and_the_models_rescanned(make_window, tmp_path: Path) -> None:
    window = make_window()
    scans: list[int] = []
    window.rescan_models = lambda: scans.append(1)
    window.window_actions.settings.trigger()
    dialog = window.settings_dialog
    assert dialog.umt5_tokenizer.text() == ""
    good = write_tokenizer(tmp_path / "umt5-xxl")
    dialog.umt5_tokenizer.setText(str(good))
    dialog.accept()
    assert load_settings().umt5_tokenizer == str(good)
    assert window.settings.shared_model_folders == (str(good),) and scans == [1]
