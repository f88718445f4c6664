"""ubus status codes and the one exception a failed call or a handler's refusal is."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["UbusError", "UbusStatus"]


class UbusStatus(IntEnum):
    """``enum ubus_msg_status`` (ubusmsg.h); ``ubus call`` exits with these."""

    OK = 0
    INVALID_COMMAND = 1
    INVALID_ARGUMENT = 2
    METHOD_NOT_FOUND = 3
    NOT_FOUND = 4
    NO_DATA = 5
    PERMISSION_DENIED = 6
    TIMEOUT = 7
    NOT_SUPPORTED = 8
    UNKNOWN_ERROR = 9
    CONNECTION_FAILED = 10
    NO_MEMORY = 11
    PARSE_ERROR = 12
    SYSTEM_ERROR = 13


_STRERROR = {
    UbusStatus.OK: "Success",
    UbusStatus.INVALID_COMMAND: "Invalid command",
    UbusStatus.INVALID_ARGUMENT: "Invalid argument",
    UbusStatus.METHOD_NOT_FOUND: "Method not found",
    UbusStatus.NOT_FOUND: "Not found",
    UbusStatus.NO_DATA: "No response",
    UbusStatus.PERMISSION_DENIED: "Permission denied",
    UbusStatus.TIMEOUT: "Request timed out",
    UbusStatus.NOT_SUPPORTED: "Operation not supported",
    UbusStatus.UNKNOWN_ERROR: "Unknown error",
    UbusStatus.CONNECTION_FAILED: "Connection failed",
    UbusStatus.NO_MEMORY: "Out of memory",
    UbusStatus.PARSE_ERROR: "Parsing message data failed",
    UbusStatus.SYSTEM_ERROR: "System error",
}


class UbusError(Exception):
    """A ubus status code other than OK.

    Raise it from a method handler to answer that status (e.g.
    ``raise UbusError(UbusStatus.INVALID_ARGUMENT, "name: unknown path")``; the message is logged
    at debug level, ubus carries only the code). Raised by calls that fail.
    """

    def __init__(self, status: int, message: str | None = None) -> None:
        try:
            self.status: UbusStatus | int = UbusStatus(status)
        except ValueError:
            self.status = status
        text = _STRERROR.get(self.status) if isinstance(self.status, UbusStatus) else None
        self.message = message
        detail = text or f"ubus status {status}"
        super().__init__(f"{message}: {detail}" if message else detail)

