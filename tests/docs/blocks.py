"""The code blocks of the documentation pages, and what each is tagged to be.

A block's tag is an HTML comment on the line before its fence (MkDocs renders the
comment as nothing, so readers see a plain block):

- ``<!-- run -->``: the docs runner (tests/system/test_docs.py) runs it, in page order,
  and the block must succeed;
- ``<!-- run: background until "TEXT" -->``: it starts a server; the runner waits for
  TEXT in its output and stops it when the page is done;
- ``<!-- output -->``: what the run block before it prints; ``…`` stands for any text,
  and runs of white space compare equal;
- ``<!-- file -->``: a file of the repository or a section of one, shown by including
  it (one ``--8<-- "PATH"`` or ``--8<-- "PATH:SECTION"`` line and nothing else); a
  later run block of the same page runs that file (tests/unit/test_docs_pages.py checks
  that one does);
- ``<!-- not run: REASON -->``: a reviewed exception (the list is in
  tests/unit/test_docs_pages.py), for a command that needs what a test machine has not
  (a container engine, a cluster, a certificate issued for your host).

Blocks in bash or python must carry one of them; other languages (yaml, go, js) may.
A line ``--8<-- "PATH"`` inside a block is pymdownx.snippets' include of a file of the
repository, expanded here as MkDocs expands it.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# Languages whose blocks must be tagged: what a reader would paste into a shell or run.
CHECKED = {"bash", "sh", "shell", "python", "py"}
SHELL = {"bash", "sh", "shell"}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<lang>[\w+-]*)(?P<rest>.*)$")
_TAG = re.compile(r"^\s*<!--\s*(?P<kind>run|output|file|not run)\s*(?::\s*(?P<arg>.*?))?\s*-->\s*$")
_UNTIL = re.compile(r'^background until "(?P<text>[^"]+)"$')
_SNIPPET = re.compile(r'^\s*--8<--\s+"(?P<path>[^"]+)"\s*$')


@dataclass(frozen=True)
class Block:
    page: str          # relative to the repository root
    line: int          # the fence's line, 1-based
    lang: str
    text: str
    kind: str | None   # "run", "output", "file", "not run" or None (untagged)
    arg: str | None    # the tag's argument: "background until …" or the reason
    include: str | None = None  # the file a block of one ``--8<-- "PATH"`` line shows

    @property
    def until(self) -> str | None:
        """The text a background block waits for, or None for a block run to its end."""
        if self.kind != "run" or not self.arg:
            return None
        match = _UNTIL.match(self.arg)
        if match is None:
            raise ValueError(f"{self.page}:{self.line}: unknown run tag {self.arg!r}")
        return match.group("text")

    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """Every page a reader follows: the README, CONTRIBUTING.md and the docs site."""
    return [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of one page, in order, with their tags."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if opened is None:
            i += 1
            continue
        indent, fence = opened.group("indent"), opened.group("fence")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.match(rf"^{re.escape(indent)}{fence}\s*$", lines[j]):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        if j == len(lines):
            raise ValueError(f"{path}:{i + 1}: a block that is never closed")
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        tag = _TAG.match(lines[k]) if k >= 0 else None
        whole = _SNIPPET.match(body[0]) if len(body) == 1 else None
        found.append(Block(
            page=str(path.relative_to(ROOT)), line=i + 1, lang=opened.group("lang").lower(),
            text="\n".join(_expanded(body)) + "\n",
            kind=tag.group("kind") if tag else None, arg=tag.group("arg") if tag else None,
            include=whole.group("path") if whole else None))
        i = j + 1
    return found


def _expanded(body: list[str]) -> list[str]:
    out: list[str] = []
    for line in body:
        snippet = _SNIPPET.match(line)
        out.extend(included(snippet.group("path")) if snippet else [line])
    return out


def included(spec: str) -> list[str]:
    """The lines ``--8<-- "SPEC"`` puts in a page: a whole file (``PATH``) or the part of
    it between ``--8<-- [start:NAME]`` and ``--8<-- [end:NAME]`` (``PATH:NAME``,
    dedented), the marker lines left out, as pymdownx.snippets does with mkdocs.yml's
    settings."""
    path, _, section = spec.partition(":")
    lines = (ROOT / path).read_text().splitlines()
    if section:
        start = next(i for i, line in enumerate(lines) if _marker(line) == ("start", section))
        end = next(i for i, line in enumerate(lines) if _marker(line) == ("end", section))
        lines = textwrap.dedent("\n".join(lines[start + 1:end])).splitlines()
    return [line for line in lines if _marker(line) is None]


_MARKER = re.compile(r"^.*?--8<--\s*\[(?P<edge>start|end):(?P<name>\w+)\]\s*$")


def _marker(line: str) -> tuple[str, str] | None:
    found = _MARKER.match(line)
    return (found.group("edge"), found.group("name")) if found else None


def shows(expected: str, actual: str) -> bool:
    """Whether ``actual`` is what an output block shows: ``…`` is any text, and runs of
    white space are equal whatever they are."""
    def squeeze(text: str) -> str:
        return re.sub(r"\s+", " ", text).strip()
    pattern = ".*?".join(re.escape(part) for part in squeeze(expected).split("…"))
    pattern = pattern.replace(r"\ ", r"\s*")
    return re.fullmatch(pattern, squeeze(actual), re.DOTALL) is not None
