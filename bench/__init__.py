"""Benchmarks: Corral against llama.cpp's ``llama-server`` and llama-cpp-python's server.

Run ``python -m bench`` (see bench/README.md).
"""
