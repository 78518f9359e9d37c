"""The gateway process: Ollama's HTTP API in front of the registry and the model runners."""
