"""Errors that know their exit code; the CLI prints their message as one line."""

EXIT_FAILED = 1  # the operation ran and was refused or failed; nothing changed
EXIT_USAGE = 2  # bad arguments or configuration


class TwinserveError(Exception):
    exit_code = EXIT_FAILED


class ConfigError(TwinserveError):
    exit_code = EXIT_USAGE


class PreflightError(TwinserveError):
    """A check before a change failed; the change was not made."""


class ServiceError(TwinserveError):
    """A component did not start, answer or accept a request."""
