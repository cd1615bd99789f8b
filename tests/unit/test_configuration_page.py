"""The configuration reference (docs/configuration.md) is made from the settings'
declarations, and the settings of a first deployment (docs/operations/settings.md)
match it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from authsvc.config import Settings
from authsvc.config.declare import declared
from authsvc.config.reference import PAGE, render, rows_of, shown

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(AUTHSVC_[A-Z0-9_]+)` \|.*$", re.MULTILINE)


def test_the_committed_page_is_what_the_declarations_make():
    """Regenerating the page changes nothing; when it would, the message says how."""
    committed = (ROOT / PAGE).read_text()

    assert committed == render(), (
        f"{PAGE} is stale: run `python -m authsvc.config --write` and commit it")


def test_the_page_has_a_row_for_every_variable_under_its_area():
    """Every variable has exactly one row, in the section of its area."""
    page = render()
    rows = ROW.findall(page)
    sections = {title: body for title, body in
                re.findall(r"^## (.+?)\n(.*?)(?=^## |\Z)", page, re.MULTILINE | re.DOTALL)}

    assert sorted(rows) == sorted(row.split("`")[1] for item in declared(Settings)
                                  for row in rows_of(item))
    for item in declared(Settings):
        assert f"| `{item.variable}` |" in sections[item.spec.area.title]


def test_the_first_deployment_page_shows_settings_exactly_as_the_reference_does():
    """Each row of a setting on docs/operations/settings.md is that setting's row of
    the reference, and the page points to the reference."""
    readme = (ROOT / "docs" / "operations" / "settings.md").read_text()
    page_rows = {row.split("`")[1]: row for item in declared(Settings)
                 for row in rows_of(item)}
    readme_rows = [match.group(0) for match in ROW.finditer(readme)]

    assert readme_rows, "the page lists the settings a first deployment sets"
    assert [row for row in readme_rows if page_rows.get(row.split("`")[1]) != row] == []
    assert "(../configuration.md)" in readme


def test_the_command_prints_the_page():
    """`python -m authsvc.config` prints the page the test above compares."""
    printed = subprocess.run([sys.executable, "-m", "authsvc.config"], cwd=ROOT,
                             capture_output=True, text=True, check=True, timeout=60)

    assert printed.stdout == render()


def test_defaults_are_shown_as_an_operator_writes_them():
    """Whole days get their count of days, booleans their variable spelling, and an
    unset or empty default says so."""
    assert [shown(value) for value in (900, 2592000.0, 86400, 0.5, True, None, (), "off")] == [
        "`900`", "`2592000` (30 days)", "`86400` (1 day)", "`0.5`", "`true`", "unset",
        "empty", "`off`"]
