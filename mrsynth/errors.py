"""The one exception type users see: a message that names the problem and what to do."""


class MRSynthError(Exception):
    """Bad input or an impossible request. The CLI prints it as one line and exits non-zero."""


class Cancelled(MRSynthError):
    """Raised when a progress callback asks to stop long work."""
