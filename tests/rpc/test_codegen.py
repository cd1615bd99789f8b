"""The committed Python stubs match what scripts/codegen generates."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_python_stubs_are_regenerated_unchanged(tmp_path: Path) -> None:
    """Regenerating from protos/ reproduces authsvc/v1 byte for byte."""
    subprocess.run([str(ROOT / "scripts/codegen"), "--out", str(tmp_path)],
                   check=True, timeout=600, capture_output=True)

    committed = sorted(p.name for p in (ROOT / "authsvc/v1").iterdir() if p.is_file())
    fresh = sorted(p.name for p in (tmp_path / "authsvc/v1").iterdir() if p.is_file())
    assert committed == fresh, "authsvc/v1: files differ; run scripts/codegen"
    stale = [name for name in committed if not filecmp.cmp(
        ROOT / "authsvc/v1" / name, tmp_path / "authsvc/v1" / name, shallow=False)]
    assert not stale, f"authsvc/v1: {stale} out of date; run scripts/codegen"


def test_stubs_import_as_documented() -> None:
    """from authsvc.v1 import auth_pb2, auth_pb2_grpc works, with .pyi files beside them."""
    from authsvc.v1 import auth_pb2, auth_pb2_grpc

    assert auth_pb2.DESCRIPTOR.package == "authsvc.v1"
    assert hasattr(auth_pb2_grpc, "AuthStub")
    assert (ROOT / "authsvc/v1/auth_pb2.pyi").exists()
    assert (ROOT / "authsvc/v1/auth_pb2_grpc.pyi").exists()
