"""Errors meant for the person using Distillery: their message is shown as it is."""


class DistilleryError(ValueError):
    """Bad input or an impossible request, explained in words a user understands."""


class Cancelled(RuntimeError):
    """The user cancelled the job; raised from a progress callback between steps."""
