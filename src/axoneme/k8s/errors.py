"""The one error the resource boundary raises."""

from __future__ import annotations


class ValidationError(ValueError):
    """A manifest is invalid; ``field`` is the path of the offending field."""

    def __init__(self, field: str, message: str, source: str = "") -> None:
        self.field = field
        self.message = message
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {message}")

    def within(self, source: str) -> ValidationError:
        """The same error, told as coming from ``source`` (a file and document)."""
        return ValidationError(self.field, self.message, source)
