"""Typed grpc.aio clients: the only place gateway code touches generated stubs."""
