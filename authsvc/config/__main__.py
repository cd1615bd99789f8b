"""``python -m authsvc.config``: print the configuration reference page;
``--write`` writes it to docs/configuration.md (run from the repository root)."""

from __future__ import annotations

import argparse

from .reference import PAGE, render


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m authsvc.config", description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {PAGE} instead")
    page = render()
    if parser.parse_args().write:
        PAGE.parent.mkdir(exist_ok=True)
        PAGE.write_text(page)
    else:
        print(page, end="")


main()
