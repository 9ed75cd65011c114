"""User-facing errors.

Every mistake a user can make (a bad config key, a missing image, a checkpoint for the wrong number of
classes) raises :class:`SfdaError` with a one-line message that names the file, line or key and says what
to do. The CLI prints it as ``error: <message>`` and exits with status 2, without a traceback.
"""


class SfdaError(Exception):
    """An error caused by user input, reported as one line without a traceback."""


class ConfigError(SfdaError):
    """A config file, key or value is invalid."""


class DataError(SfdaError):
    """A data list, image or data root is invalid."""


class CheckpointError(SfdaError):
    """A checkpoint is missing or does not match the config."""
