"""The gRPC side: servicers, metadata, and the one mapping of errors to status."""
