"""Win32 error codes and the exact messages Windows prints for them.

The simulator keeps its own table (it must not import the product's
``syncer.nodes.windows.vocabulary``, whose constants it is there to check). A :class:`Win32Error`
raised anywhere in the simulated host (file system, service control manager) carries the
code; each front end renders it the way Windows does: sc.exe as
``[SC] <Function> FAILED <code>:`` plus the message, PowerShell as the exception message
and the exit code of the vocabulary's catch block, SFTP as a status code.
"""

from __future__ import annotations

FILE_NOT_FOUND = 2
PATH_NOT_FOUND = 3
ACCESS_DENIED = 5
SHARING_VIOLATION = 32
DISK_FULL = 112
BAD_EXE_FORMAT = 193
ALREADY_EXISTS = 183
DIR_NOT_EMPTY = 145
DEPENDENT_SERVICES_RUNNING = 1051
SERVICE_REQUEST_TIMEOUT = 1053
SERVICE_ALREADY_RUNNING = 1056
SERVICE_DISABLED = 1058
SERVICE_DOES_NOT_EXIST = 1060
SERVICE_CANNOT_ACCEPT_CTRL = 1061
SERVICE_NOT_ACTIVE = 1062
SERVICE_DEPENDENCY_FAIL = 1068
SERVICE_MARKED_FOR_DELETE = 1072
SERVICE_EXISTS = 1073
SERVICE_DEPENDENCY_DELETED = 1075
TIMEOUT = 1460
INVALID_COMMAND_LINE = 1639

MESSAGES: dict[int, str] = {
    FILE_NOT_FOUND: "The system cannot find the file specified.",
    PATH_NOT_FOUND: "The system cannot find the path specified.",
    ACCESS_DENIED: "Access is denied.",
    SHARING_VIOLATION: (
        "The process cannot access the file because it is being used by another process."
    ),
    DISK_FULL: "There is not enough space on the disk.",
    BAD_EXE_FORMAT: "%1 is not a valid Win32 application.",
    ALREADY_EXISTS: "Cannot create a file when that file already exists.",
    DIR_NOT_EMPTY: "The directory is not empty.",
    DEPENDENT_SERVICES_RUNNING: (
        "A stop control has been sent to a service that other running services are "
        "dependent on."
    ),
    SERVICE_REQUEST_TIMEOUT: (
        "The service did not respond to the start or control request in a timely fashion."
    ),
    SERVICE_ALREADY_RUNNING: "An instance of the service is already running.",
    SERVICE_DISABLED: (
        "The service cannot be started, either because it is disabled or because it has no "
        "enabled devices associated with it."
    ),
    SERVICE_DOES_NOT_EXIST: "The specified service does not exist as an installed service.",
    SERVICE_CANNOT_ACCEPT_CTRL: "The service cannot accept control messages at this time.",
    SERVICE_NOT_ACTIVE: "The service has not been started.",
    SERVICE_DEPENDENCY_FAIL: "The dependency service or group failed to start.",
    SERVICE_MARKED_FOR_DELETE: "The specified service has been marked for deletion.",
    SERVICE_EXISTS: "The specified service already exists.",
    SERVICE_DEPENDENCY_DELETED: (
        "The dependency service does not exist or has been marked for deletion."
    ),
    TIMEOUT: "This operation returned because the timeout period expired.",
    INVALID_COMMAND_LINE: "The command line is invalid.",
}


class Win32Error(Exception):
    """A failed Windows API call: ``code`` is the Win32 error code."""

    def __init__(self, code: int, path: str | None = None, message: str | None = None) -> None:
        self.code = code
        self.path = path
        self.text = message or MESSAGES.get(code, f"Win32 error {code}.")
        super().__init__(self.text)

    @property
    def powershell_message(self) -> str:
        """How .NET words it in ``$_.Exception.Message`` for a path operation."""
        if self.path is None:
            return self.text
        if self.code == ACCESS_DENIED:
            return f"Access to the path '{self.path}' is denied."
        if self.code in (FILE_NOT_FOUND,):
            return f"Could not find file '{self.path}'."
        if self.code == PATH_NOT_FOUND:
            return f"Could not find a part of the path '{self.path}'."
        if self.code == SHARING_VIOLATION:
            return (
                f"The process cannot access the file '{self.path}' because it is being used "
                "by another process."
            )
        return self.text
