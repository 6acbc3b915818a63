"""The command line: ``studio generate``, ``studio models``, ``studio queue``, ``studio bench``,
``studio cache``, ``studio lora``, and the commands model families add (``studio train demo``,
``studio eval demo``).

One function per command; each calls the same service layer as the GUI.
"""

from __future__ import annotations

import argparse
import logging
import sys

from studio.cli.cache import add_cache
from studio.cli.generate import add_generate, add_models
from studio.cli.lora import add_lora_command
from studio.cli.queue import add_queue
from studio.errors import Cancelled, StudioError
from studio.logs import setup_logging

log = logging.getLogger("studio.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    add_generate(sub)
    add_models(sub)
    add_family_commands(sub)
    from studio.bench import add_bench_parser

    add_bench_parser(sub)
    add_queue(sub)
    add_cache(sub)
    add_lora_command(sub)
    return parser


def add_family_commands(sub: argparse._SubParsersAction) -> None:
    """``studio <verb> <family>`` for every command a registered family offers."""
    from studio.models.registry import families

    verbs: dict[str, argparse._SubParsersAction] = {}
    for family in families():
        for command in family.commands():
            if command.verb not in verbs:
                parser = sub.add_parser(command.verb, help=f"{command.verb} a model family's model")
                verbs[command.verb] = parser.add_subparsers(dest=f"{command.verb}_command",
                                                            required=True)
            parser = verbs[command.verb].add_parser(family.name, help=command.help)
            command.add_arguments(parser)
            parser.set_defaults(func=command.run)


def run_cli(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.func(args) or 0)
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except StudioError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
