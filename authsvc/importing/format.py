"""The import format, for adapters and their tests: ``parse`` a dict (or
``parse_line`` a line) as ``authsvc users import`` will, ``InvalidArgument``
naming the field when it would be refused."""

from __future__ import annotations

from ..domain.accounts.imported import ImportedUser, WeakHash, parse, parse_line

__all__ = ["ImportedUser", "WeakHash", "parse", "parse_line"]
