"""Chat formats: named renderers (prompt builders) and parsers (output splitters).

A model's config may name a ``renderer`` and a ``parser`` (Modelfile ``RENDERER``/``PARSER``,
``/api/create``), as in Ollama; without them its template renders and the template's tags
split the output. ``gateway.formats.chat_format.ChatFormat`` picks one or the other; the
registry of names is ``gateway.formats.registry``. This package file imports nothing, so the
modules can depend on one another without cycles.
"""
