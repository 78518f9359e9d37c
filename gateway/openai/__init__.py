"""OpenAI-compatible ``/v1`` endpoints (Ollama ``openai/openai.go`` + ``middleware/openai.go``).

Each request is translated into the native request body and run through the same services as
``/api/*``; the native objects are re-encoded as OpenAI's (SSE when streaming). Errors use
OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` with the native status.
"""
