"""Errors raised for unreadable or invalid world files."""


class WorldFileError(ValueError):
    """A world file is missing, corrupt, truncated, hostile or of an unknown kind."""
