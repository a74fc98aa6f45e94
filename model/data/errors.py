"""The one error of the data package: the example table cannot be used as asked."""

class DataError(ValueError):
    """The example table cannot be used as asked (no days, an unknown day, an empty split, ...)."""
