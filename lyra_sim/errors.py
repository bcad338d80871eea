"""The package's one error base class.

Every error lyra_sim raises for bad user input (a file, an image, a checkpoint, a pose, a
parameter) derives from :class:`LyraSimError`. It stays a ``ValueError`` so callers that caught
``ValueError`` keep working; the ``lyra-sim`` command turns it into one line and exit code 2.
"""


class LyraSimError(ValueError):
    """A user-facing error: the message names the offending input (a path, an argument, a field)."""
