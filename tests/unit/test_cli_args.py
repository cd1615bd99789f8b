"""``authsvc keys retire KID`` takes any kid, including the one in 64 whose base64url
thumbprint starts with ``-`` (argparse would read it as an option)."""

from __future__ import annotations

import pytest

from authsvc.runtime.cli import _kid_as_operand, _parser


@pytest.mark.parametrize("argv", [
    ["keys", "retire", "-EVBjaLz"],
    ["keys", "retire", "-EVBjaLz", "--database-url", "postgresql://h/db"],
    ["keys", "retire", "--data-dir", "/d", "-EVBjaLz"],
    ["keys", "retire", "--database-url=postgresql://h/db", "-EVBjaLz"],
    ["keys", "retire", "--", "-EVBjaLz"],
])
def test_a_kid_starting_with_a_dash_is_the_kid(argv):
    args = _parser().parse_args(_kid_as_operand(argv))

    assert (args.command, args.kid) == ("keys", "-EVBjaLz")


def test_other_commands_are_left_as_they_are():
    argv = ["users", "add", "--email", "a@example.com", "--password-stdin"]

    assert _kid_as_operand(argv) == argv
