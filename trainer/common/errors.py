"""The one exception type that user-facing shells turn into a one-line error."""


class PoetstudioError(Exception):
    """A failure the user can act on; its message is a single line that says what to do."""
