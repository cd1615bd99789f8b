"""MkDocs hooks: the pages and files the site shows from outside docs/.

SECURITY.md, CHANGELOG.md and CONTRIBUTING.md stay at the repository's root, where
people look for them, and are served as pages of the site as they are; so are the
benchmark's chart, the JS client's screenshots and the OpenAPI specs. Nothing is
copied into docs/, so nothing can drift.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
PAGES = {"security.md": "SECURITY.md", "changelog.md": "CHANGELOG.md",
         "contributing.md": "CONTRIBUTING.md"}
ASSETS = {"assets/bench-latest.png": "bench/results/latest.png",
          **{f"assets/screenshots/{p.name}": str(p.relative_to(ROOT))
             for p in sorted((ROOT / "clients/js/demo/screenshots").glob("*.png"))},
          **{f"reference/openapi/{p.name}": str(p.relative_to(ROOT))
             for p in sorted((ROOT / "openapi/authsvc/v1").glob("*.json"))}}


def _license() -> str:
    """The licence page: LICENSE itself, or the licence pyproject.toml declares."""
    text = ROOT / "LICENSE"
    if text.exists():
        return f"# License\n\n```text\n{text.read_text().rstrip()}\n```\n"
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    return f"# License\n\nauthsvc is licensed under {declared}.\n"


def on_files(files: Files, config: Any) -> Files:
    for uri, source in {**PAGES, **ASSETS}.items():
        files.append(File.generated(config, uri, abs_src_path=str(ROOT / source)))
    files.append(File.generated(config, "license.md", content=_license()))
    return files
