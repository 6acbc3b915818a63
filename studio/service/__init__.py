"""The Qt-free service layer the CLI and the desktop app both use."""
