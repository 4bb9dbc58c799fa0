"""The one error hierarchy of ap-actors, and the exit codes of the `ap` command.

Every error the package raises on purpose is an :class:`ApError`. Third-party errors are
wrapped with ``raise ... from e`` so the original stays on ``__cause__``. A user-facing
failure carries an ``exit_code`` and a one-line message that says what is wrong and how
to fix it; the CLI prints that line and exits with the code, never a traceback.
"""

from __future__ import annotations

# Exit codes of the `ap` command (documented in README.md, "Exit codes").
EXIT_OK = 0
EXIT_INTERNAL = 1  # A bug: an unexpected exception (traceback in the log).
EXIT_USAGE = 2  # Bad command line (argparse's own code).
EXIT_CONFIG = 3  # ap.toml / arguments are invalid.
EXIT_NO_MESH = 4  # No mesh is running in the state directory, or it does not answer.
EXIT_MESH_RUNNING = 5  # `ap up` found a mesh already running in the state directory.
EXIT_EVENTLOG = 6  # The event log cannot be opened, read or written.
EXIT_STARTUP = 7  # An actor failed to start (e.g. an endpoint's address is in use).
EXIT_REJECTED = 8  # The journal rejected an event (`ap emit`).
EXIT_SESSION_ENDED = 9  # `ap submit --wait`: the session failed or was cancelled.


class ApError(Exception):
    """Base of every deliberate ap-actors error.

    Attributes:
        exit_code: what the CLI exits with when this error reaches it.
    """

    exit_code: int = EXIT_INTERNAL


class ConfigError(ApError):
    """A configuration file or argument is invalid; the message names the key and the fix."""

    exit_code = EXIT_CONFIG


class EventLogError(ApError):
    """The LMDB event log cannot be opened, read or written."""

    exit_code = EXIT_EVENTLOG


class SequenceError(EventLogError):
    """Records were folded out of order: ``seq`` did not increase (a gap or a repeat)."""


class DecodeError(ApError):
    """Bytes are not a valid event, record or frame.

    Attributes:
        code: machine-readable reason, one of the ingest error codes of `protocol.py`.
        index: position of the offending event in its batch, or -1.
        raw: the input that failed, kept for diagnosis.
    """

    def __init__(self, code: str, message: str, index: int = -1, raw: bytes = b"") -> None:
        super().__init__(message)
        self.code = code
        self.index = index
        self.raw = raw


class BusError(ApError):
    """The journal could not be reached or refused a request."""

    exit_code = EXIT_NO_MESH


class RejectedError(BusError):
    """The journal answered a batch with an ``error`` reply; nothing of it was appended.

    Attributes:
        code: the journal's machine-readable error code (`protocol.ERROR_CODES`).
        index: index of the offending event in the batch, or -1.
    """

    exit_code = EXIT_REJECTED

    def __init__(self, code: str, message: str, index: int = -1) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.index = index


class MeshNotRunningError(ApError):
    """No mesh runs in the state directory (no mesh.json, or its supervisor is gone)."""

    exit_code = EXIT_NO_MESH


class MeshRunningError(ApError):
    """`ap up` found a live mesh in the state directory."""

    exit_code = EXIT_MESH_RUNNING


class StartupError(ApError):
    """An actor process could not start (its reason is in the message)."""

    exit_code = EXIT_STARTUP


class ScopeError(ApError):
    """A scope pattern is invalid."""

    exit_code = EXIT_CONFIG


class AgentError(ApError):
    """An agent CLI could not be run or its output could not be parsed (a bad command
    template in the team file is a configuration error)."""

    exit_code = EXIT_CONFIG
