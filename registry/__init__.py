"""The registry process: model names, manifests and blobs under ``OLLAMA_MODELS``, over gRPC."""
