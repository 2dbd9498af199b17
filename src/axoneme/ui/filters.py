"""The flows table's filter box takes ``axoneme observe``'s own flags (one parser)."""

from __future__ import annotations

import argparse
import shlex
from typing import NoReturn

from axoneme.cli import observe
from axoneme.cli.context import CLIError
from axoneme.observer.proto import observer_pb2 as pb

__all__ = ["FilterError", "flows_request"]

# Which flows the UI asks for: the last ones held, then everything new.
HISTORY = 1000
_NOT_FILTERS = ("--follow", "-f", "--last", "--first", "--server", "--node", "-o", "--output")


class FilterError(ValueError):
    """A filter string the observe flags reject; the message names the flag."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise FilterError(message)


def _parser() -> argparse.ArgumentParser:
    root: argparse.ArgumentParser = _Parser(prog="filter", add_help=False)
    # Subparsers are made with the root's class, so they raise FilterError too.
    observe.add_parser(root.add_subparsers(dest="command"))
    return root


def flows_request(text: str, history: int = HISTORY) -> pb.GetFlowsRequest:
    """The followed GetFlows request for a filter string such as
    ``--verdict DROPPED --to-pod demo/web``; FilterError on bad input."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise FilterError(f"filter: {exc}") from None
    for word in words:
        if word.split("=", 1)[0] in _NOT_FILTERS:
            raise FilterError(f"{word}: not a filter (the UI always follows the latest flows)")
    try:
        args = _parser().parse_args(["observe", *words])
        req = observe.build_request(args)
    except CLIError as exc:
        raise FilterError(str(exc)) from None
    req.follow = True
    if not args.since:
        req.number = history
    return req
