"""The configuration reference page, written from the declarations.

``docs/configuration.md`` is this module's output, committed; a unit test
fails when it differs from what the declarations make now.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .declare import Area, Declared, declared
from .settings import DAY, Settings

PAGE = Path("docs") / "configuration.md"
HEADER = "| variable | default | value | meaning |\n|---|---|---|---|"
INTRO = """\
# Configuration

<!-- Generated from authsvc/config/settings.py by `python -m authsvc.config --write`;
     edit the declarations there, not this page (a test fails when it is stale). -->

authsvc reads these `AUTHSVC_*` environment variables once, at start-up. A variable
that is empty counts as unset. An invalid value stops start-up (exit 2) with one line
naming the variable and what it takes, as the *value* column says; an `AUTHSVC_*`
variable authsvc does not know is warned about, with the setting it probably meant.
Secret values print masked in logs and reprs. The command line's `--listen`,
`--workers`, `--data-dir`, `--database-url` and `--no-reflection` win over the
variables.
"""


def render(cls: type = Settings) -> str:
    """The whole page: an introduction, then a section and a table per area."""
    sections: dict[Area, list[Declared]] = {}
    for item in declared(cls):
        sections.setdefault(item.spec.area, []).append(item)
    parts = [INTRO]
    for area, items in sections.items():
        rows = "\n".join(row for item in items for row in rows_of(item))
        parts.append(f"## {area.title}\n\n{area.intro}\n\n{HEADER}\n{rows}\n")
    return "\n".join(parts)


def rows_of(item: Declared) -> list[str]:
    """The table row of a setting (two for one with a ``*_FILE`` variant)."""
    rows = [_row(item.variable, _default(item), _value(item), item.spec.doc)]
    if item.spec.file_variant:
        rows.append(_row(item.variable + "_FILE", "unset", "a file path",
                         f"a file holding `{item.variable}` (read when that is unset)"))
    return rows


def _row(variable: str, default: str, value: str, meaning: str) -> str:
    return f"| `{variable}` | {default} | {value} | {meaning} |"


def _value(item: Declared) -> str:
    """What the variable takes: its kind, and the checks start-up makes."""
    kind = ("secret: " if item.secret else "") + item.kind.takes
    checks = (check.says if check.says.startswith(("must", "needs"))
              else f"{item.variable} {check.says}" for check in item.spec.checks)
    # dict.fromkeys: a sentence that a rule and a relation both say is shown once
    return "; ".join(dict.fromkeys([kind, *checks]))


def _default(item: Declared) -> str:
    if item.spec.shown is not None:
        return item.spec.shown
    return shown(item.default())


def shown(value: Any) -> str:
    """A default as the page states it: `900`, `2592000` (30 days), unset, empty."""
    if value is None:
        return "unset"
    if value == ():
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float) and float(value).is_integer():
        days = int(value) // DAY
        note = f" ({days} day{'s' * (days > 1)})" if value >= DAY and value % DAY == 0 else ""
        return f"`{int(value)}`{note}"
    return f"`{value}`"
