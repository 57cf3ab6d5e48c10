"""The one exception type users see: its message is a single line that says what to fix."""


class AssistantError(Exception):
    """A problem the user can fix (bad input, missing index, unreachable backend)."""

    def __init__(self, message: str):
        # One line, always: callers print it as "error: <message>".
        super().__init__(" ".join(str(message).split()))
