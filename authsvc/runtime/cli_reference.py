"""The command line reference page, written from the ``authsvc`` command's parser.

``docs/reference/cli.md`` is this module's output, committed; a unit test fails
when it differs from what the parser in ``runtime/cli.py`` makes now.
``python -m authsvc.runtime.cli_reference`` prints the page; ``--write`` writes it
(run from the repository root).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from .cli import _parser

PAGE = Path("docs") / "reference" / "cli.md"
INTRO = """\
# Command line

<!-- Generated from authsvc/runtime/cli.py by `python -m authsvc.runtime.cli_reference
     --write`; edit the parser there, not this page (a test fails when it is stale). -->

Every subcommand accepts `--data-dir` and `--database-url`. Errors are one
line on stderr, never a traceback: exit 2 for bad input or configuration
(including a port something else listens on, and a wrong database URL, user,
password or database), 3 when the database cannot be reached (or only a
read-only standby answers), 130 when
interrupted (^C or SIGTERM before the server is up; once serving, SIGTERM is a
clean shutdown, exit 0), 1 for anything unexpected. The CLI works while
`authsvc serve` runs on the same data directory.

`users disable` and `users set-password` revoke all of the user's sessions,
and a sign-in that checked the old password while they ran creates no
session. `users scopes` (and UserAdmin `SetScopes`) revokes nothing: each
session's next access token, at its next Refresh, carries the user's scopes
as they are then.
`--password-stdin` reads the password exactly, dropping only a final newline.
"""


def _commands(parser: argparse.ArgumentParser,
              path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str,
                                                              argparse.ArgumentParser]]:
    """Each leaf command: its words after ``authsvc``, its help line and its parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                nested = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
                if nested:
                    yield from _commands(sub, (*path, name))
                else:
                    yield (*path, name), helps.get(name, ""), sub


def _option(action: argparse.Action) -> str:
    names = ", ".join(f"`{name}`" for name in action.option_strings) or f"`{action.dest}`"
    if action.option_strings and action.nargs != 0:
        names += f" `{action.metavar or action.dest.upper()}`"
    return names


def _describe(action: argparse.Action) -> str:
    text = (action.help or "").replace("|", "\\|")
    notes = []
    if action.required and action.option_strings:
        notes.append("required")
    if isinstance(action, argparse._AppendAction):
        notes.append("repeatable")
    return "; ".join([text, *notes]) if text and notes else text or "; ".join(notes)


def render() -> str:
    """The whole page: the introduction, then a section per command with its usage and
    a table of its options."""
    parser = _parser()
    parts = [INTRO]
    for words, help_line, sub in _commands(parser):
        usage = sub.format_usage().removeprefix("usage: ").strip()
        usage = " ".join(usage.split())
        rows = [f"| {_option(action)} | {_describe(action)} |" for action in sub._actions
                if not isinstance(action, argparse._HelpAction)]
        section = [f"## authsvc {' '.join(words)}", "", f"{help_line[:1].upper()}{help_line[1:]}.",
                   "", "```text", usage, "```"]
        groups = [g for g in sub._mutually_exclusive_groups if g.required]
        for group in groups:
            names = ", ".join(f"`{a.option_strings[0]}`" for a in group._group_actions)
            section += ["", f"Exactly one of {names} names the user."]
        if rows:
            section += ["", "| option | |", "|---|---|", *rows]
        parts.append("\n".join(section) + "\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m authsvc.runtime.cli_reference",
                                     description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {PAGE} instead")
    page = render()
    if parser.parse_args(argv).write:
        PAGE.parent.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(page)
    else:
        sys.stdout.write(page)


if __name__ == "__main__":
    main()
