"""The ``authsvc`` command's entry point (the console script and ``python -m
authsvc``), kept tiny so that its first statement runs a moment after the
interpreter's start-up.

That statement hands a ^C back to the operating system: until ``cli.main`` is
ready to stop what it starts, SIGINT does what it does before Python runs,
ending the process at once and quietly (exit status 130 in a shell), instead
of raising KeyboardInterrupt in whichever module is importing and printing a
traceback. Nothing needs stopping yet: ``cli.main`` raises KeyboardInterrupt on
SIGINT again before it starts anything (the embedded PostgreSQL, workers).
A SIGINT inherited as ignored (a background job's) stays ignored.

``_signal`` rather than ``signal``: the latter imports enum and functools first,
a few milliseconds in which ^C would still print a traceback. What no entry
point can cover is the interpreter's own start-up before this line: CPython
raises KeyboardInterrupt from its first Python code on, so a ^C while it
imports ``site`` (the ``.pth`` files of site-packages) ends in "Fatal Python
error: init_import_site" and one during its first imports in a traceback.
That window is the interpreter's (about a millisecond in an installed
package; an editable install's import hook makes it 10-20 ms).
"""

import _signal  # type: ignore[import-not-found]  # first: see above

if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)

import sys  # after the signal, on purpose


def main() -> int:
    """``authsvc ...``: the command line in ``authsvc.runtime.cli``."""
    from .runtime.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
