"""The one exception type that user-facing shells turn into a one-line error."""


class PoetstudioError(Exception):
    """A failure the user can act on; its message is a single line that says what to do."""


def first_line(exc: BaseException) -> str:
    """The first line of what `exc` says, or its type's name when it says nothing.

    Libraries raise multi-line messages (tracebacks of their own, hints); a one-line error
    quotes only the first.
    """
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
