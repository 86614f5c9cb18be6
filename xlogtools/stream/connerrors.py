"""What a connection to a server fails with: ConnectError (no connection could be made),
ServerError (an ErrorResponse), ConnectionLost (EOF or a reset the protocol did not expect).
"""
from __future__ import annotations

from ..errors import XlogError
from .messages import ErrorResponse


class ConnectError(XlogError):
    """No connection could be made (every host failed); the message says why for each."""

    def __init__(self, message: str, *, server_error: ErrorResponse | None = None,
                 auth_failed: bool = False) -> None:
        super().__init__(message)
        self.server_error = server_error
        self.auth_failed = auth_failed


class ServerError(XlogError):
    """The server answered with an ErrorResponse."""

    def __init__(self, context: str, err: ErrorResponse) -> None:
        super().__init__(f"{context}: {err.text()}")
        self.error = err

    @property
    def sqlstate(self) -> str:
        return self.error.sqlstate

    @property
    def fatal(self) -> bool:
        return self.error.fatal


class ConnectionLost(XlogError):
    """The connection broke (EOF, reset) where the protocol did not expect it."""


__all__ = ["ConnectError", "ServerError", "ConnectionLost"]
