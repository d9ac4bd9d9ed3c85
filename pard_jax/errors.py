"""The one exception type that programs turn into a single sentence on stderr."""


class UserError(Exception):
    """Bad input from a person: the message says what is wrong and what to do."""
