"""User-facing errors.

Every mistake a user can make (a bad config key, a missing image, a checkpoint for the wrong number of
classes) raises :class:`SfdaError` with a one-line message that names the file, line or key and says what
to do. The CLI prints it as ``error: <message>`` and exits with status 2, without a traceback.
"""

import errno


class SfdaError(Exception):
    """An error caused by user input, reported as one line without a traceback."""


class ConfigError(SfdaError):
    """A config file, key or value is invalid."""


class DataError(SfdaError):
    """A data list, image or data root is invalid."""


class CheckpointError(SfdaError):
    """A checkpoint is missing or does not match the config."""


def os_cause(e: OSError) -> str:
    """A short cause for an OS error (read-only file system, disk full, permission denied, ...)."""
    if e.errno == errno.ENOSPC:
        return "no space left on the device"
    if e.errno == errno.EROFS:
        return "read-only file system"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if e.errno == errno.ENOTDIR:
        return "a file is in the way"
    return e.strerror or type(e).__name__
