"""The committed TypeScript types in clients/js/src/gen match the protos.

Regenerates everything with ``scripts/codegen --out TMP`` and compares
clients/js/src/gen/ with the committed files byte for byte: error_reason.ts
(the ErrorReason union, from the proto's descriptor) and auth.ts (the wire
types, by openapi-typescript from the OpenAPI spec). The second needs Node.js
with npm; the codegen of the Go stubs it shares needs Go.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from authsvc.v1.error_reason_pb2 import ErrorReason

pytestmark = pytest.mark.go  # scripts/codegen runs the Go plugins too
ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "clients/js/src/gen"


def _require(tool: str, what: str) -> None:
    if shutil.which(tool) is None:
        message = f"the TypeScript codegen check needs {what} on PATH"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clients/js/src/gen as scripts/codegen writes it now."""
    _require("go", "Go 1.26+")
    _require("npm", "Node.js 20+ with npm")
    out = tmp_path_factory.mktemp("codegen")
    subprocess.run([str(ROOT / "scripts/codegen"), "--out", str(out)],
                   check=True, timeout=600, capture_output=True)
    return out / "clients/js/src/gen"


def test_typescript_types_are_regenerated_unchanged(fresh: Path) -> None:
    """Regenerating from protos/ reproduces clients/js/src/gen exactly."""
    committed = sorted(p.name for p in GENERATED.iterdir() if p.is_file())
    regenerated = sorted(p.name for p in fresh.iterdir() if p.is_file())
    assert committed == regenerated == ["auth.ts", "error_reason.ts"], \
        "clients/js/src/gen: files differ; run scripts/codegen"
    stale = [name for name in committed
             if not filecmp.cmp(GENERATED / name, fresh / name, shallow=False)]
    assert not stale, f"clients/js/src/gen: {stale} out of date; run scripts/codegen"


def test_the_typescript_reason_union_is_the_enum(fresh: Path) -> None:
    """The ErrorReason union lists exactly the enum's values, zero value aside."""
    union = re.findall(r'^  \| "([A-Z_]+)"', (fresh / "error_reason.ts").read_text(), re.M)
    declared = [v.name for v in ErrorReason.DESCRIPTOR.values if v.number != 0]

    assert union == declared
