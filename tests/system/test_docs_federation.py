"""The federation guide (docs/guides/federation.md), run by the docs runner's machinery
(tests/system/test_docs.py's ``Page``) with its two providers' ports swapped for free
ones as well: the OpenID Connect provider's 127.0.0.1:9998 and the GitHub shape's
127.0.0.1:9997, besides authsvc's and the gateway's. Needs Go (the gateway and the
provider are built from source)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..docs.blocks import ROOT, Block, blocks, shows
from .test_docs import Page, _free_port, page_dir  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.go]
GUIDE = ROOT / "docs" / "guides" / "federation.md"
PROVIDER_PORTS = {"oidc": 9998, "github": 9997}


class FederationPage(Page):
    """A page run whose provider ports are free ones too."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.provider_ports = {name: _free_port() for name in PROVIDER_PORTS}

    def text(self, block: Block) -> str:
        text = super().text(block)
        for name, default in PROVIDER_PORTS.items():
            text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{self.provider_ports[name]}")
        return text


def test_the_federation_guide_signs_browsers_in_through_both_providers(
        page_dir: Path) -> None:  # noqa: F811 (the fixture)
    """Each run block of the guide succeeds in order (two providers, authsvc, the
    gateway, a sign-in through each provider), and each output shown is what the run
    block before it printed."""
    page = FederationPage(page_dir)
    printed: str | None = None
    try:
        for number, block in enumerate(blocks(GUIDE)):
            if block.kind == "run":
                until = block.until
                if until is None:
                    printed = page.run(block, number)
                else:
                    page.start(block, number, until)
                    printed = None
            elif block.kind == "output":
                assert printed is not None, f"{block.where()}: output of no run block"
                assert shows(page.text(block), printed), (
                    f"{block.where()}: the page shows\n{block.text}\nbut the command printed\n"
                    f"{printed}")
    finally:
        page.stop()
