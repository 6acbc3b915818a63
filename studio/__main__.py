"""Entry point: ``studio`` with no arguments opens the desktop app, otherwise the CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith("--smoke-test"):
        from studio.app.main import run_app

        return run_app(args)
    from studio.cli import run_cli

    return run_cli(args)


if __name__ == "__main__":
    sys.exit(main())
