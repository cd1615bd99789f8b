"""The ``authsvc`` command knows which modules the server extra brings, and runs
one tiny entry point however it is started."""

from __future__ import annotations

from authsvc.runtime.cli import SERVER_MODULES

from ..conftest import ROOT
from .test_packaging import PYPROJECT, _third_party_imports, _uncovered


def test_the_modules_checked_before_a_command_are_those_beyond_the_base_install():
    """cli.SERVER_MODULES, which every command checks before it starts, are exactly
    the third-party modules authsvc imports that the base dependencies do not bring."""
    imports = _third_party_imports(list((ROOT / "authsvc").rglob("*.py")))

    beyond_base = _uncovered(imports, PYPROJECT["project"]["dependencies"])

    assert sorted(beyond_base) == sorted(SERVER_MODULES)


def test_the_console_script_is_the_entry_point_python_m_runs():
    """`authsvc` and `python -m authsvc` both start in authsvc/__main__.py, whose first
    statement takes ^C over from the interpreter."""
    assert PYPROJECT["project"]["scripts"]["authsvc"] == "authsvc.__main__:main"
