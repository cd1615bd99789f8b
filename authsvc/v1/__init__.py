"""Generated protobuf and gRPC stubs for authsvc.v1 (see scripts/codegen)."""
