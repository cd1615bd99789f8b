"""The committed Go stubs, gateway code and OpenAPI spec match the protos.

Regenerates everything with ``scripts/codegen --out TMP`` (pinned plugins
from ``scripts/install-tools``) and compares gateway/gen/, gateway/verify/gen/
and openapi/authsvc/ with the committed files byte for byte.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.go  # needs the Go toolchain (system comes from conftest)
ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("gateway/gen", "gateway/verify/gen", "openapi/authsvc")


def _require_go() -> None:
    if shutil.which("go") is None:
        message = "the Go codegen check needs Go 1.26+ on PATH (https://go.dev/dl/)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def test_go_and_openapi_code_is_regenerated_unchanged(tmp_path: Path) -> None:
    """Regenerating from protos/ reproduces gateway/gen and openapi/ exactly."""
    _require_go()

    subprocess.run([str(ROOT / "scripts/codegen"), "--out", str(tmp_path)],
                   check=True, timeout=600, capture_output=True)

    for sub in GENERATED:
        committed, fresh = _files(ROOT / sub), _files(tmp_path / sub)
        assert sorted(committed) == sorted(fresh), f"{sub}: files differ; run scripts/codegen"
        stale = [name for name in committed
                 if not filecmp.cmp(committed[name], fresh[name], shallow=False)]
        assert not stale, f"{sub}: {stale} out of date; run scripts/codegen"
