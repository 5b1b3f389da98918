"""The error taxonomy. Each class maps to one documented process exit code.

0 success; 1 anything unexpected (including a broken accounting identity); 2 usage or config error, or an index
another run changed meanwhile (re-run); 3 input error (missing path, unreadable data, wrong schema, duplicate ids).
"""

from __future__ import annotations


class DedupSparkError(Exception):
    """Base class. `exit_code` is what the CLI returns; the message says what, where and the fix."""

    exit_code = 1


class UsageError(DedupSparkError):
    """The command line is wrong, or the output folder is not empty and --overwrite was not given."""

    exit_code = 2


class ConfigError(UsageError):
    """A config key is unknown or a value is invalid."""

    exit_code = 2


class IndexConflictError(UsageError):
    """Another run committed to the --index after this run read it: nothing was added; run the same command again."""

    exit_code = 2


class InputError(DedupSparkError):
    """The input cannot be read as asked: missing path, unreadable files, wrong schema, duplicate ids."""

    exit_code = 3


class AccountingError(DedupSparkError):
    """Rows read do not equal rows written + removed + quarantined: a bug, never a user error."""

    exit_code = 1
