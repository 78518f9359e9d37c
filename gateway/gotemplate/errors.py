"""The one exception of the template engine."""

from __future__ import annotations


class TemplateError(Exception):
    """A template failed to parse or to execute; the message follows Go's ``template: ...`` form."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
