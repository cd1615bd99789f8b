"""authsvc's gRPC server side: servicers handed their collaborators, and the one
interceptor every call leaves through (``transport.calls``)."""
