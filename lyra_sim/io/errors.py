"""Errors raised for unreadable or invalid world files."""

from lyra_sim.errors import LyraSimError


class WorldFileError(LyraSimError):
    """A world file is missing, corrupt, truncated, hostile or of an unknown kind."""
