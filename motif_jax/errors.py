"""One exception type for bad user input, so the CLI can print one clear line instead of a traceback."""


class MotifError(Exception):
    """A problem the user can fix (bad file, bad option, missing dependency). Message = one line."""
