"""Errors that know their exit code; `twinserve` prints their message as one line.

Exit codes of every `twinserve <verb>` (twinserve/cli/__init__.py turns an error into them):

    0  done
    1  refused or failed (EXIT_FAILED): the command ran and changed nothing it could not undo
    2  usage or configuration (EXIT_USAGE): bad arguments, a bad stack description or model directory
    3  `twinserve pipeline` only: a stage failed after promotion and the rollback failed too
  130  interrupted (Ctrl-C)

The archiver (archiver/, outside this package) raises ArchiveError with the same
exit codes; see archiver/build.py for why it is not a subclass of TwinserveError.
"""

EXIT_OK = 0
EXIT_FAILED = 1  # the operation ran and was refused or failed; nothing changed
EXIT_USAGE = 2  # bad arguments or configuration
EXIT_INTERRUPTED = 130


class TwinserveError(Exception):
    exit_code = EXIT_FAILED


class ConfigError(TwinserveError):
    """The stack description, a model directory or a stored file is wrong; the message says how to fix it."""

    exit_code = EXIT_USAGE


class UsageError(TwinserveError):
    """A command line that does not parse: a verb, an option or a value that is not allowed."""

    exit_code = EXIT_USAGE


class PreflightError(TwinserveError):
    """A check before a change failed; the change was not made."""


class ServiceError(TwinserveError):
    """A component did not start, answer or accept a request."""


class CheckFailed(TwinserveError):
    """A measurement missed its threshold (the load test's gate, the swap check's zero failures)."""
