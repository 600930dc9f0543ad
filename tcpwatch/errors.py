"""One error hierarchy; the CLI turns each into a one-line message and an exit code."""


class TcpwatchError(Exception):
    """Base of every error tcpwatch reports to a person. Exit code 1."""

    exit_code = 1

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def one_line(self) -> str:
        return f"{self.message} (fix: {self.fix})" if self.fix else self.message


class EnvironmentProblem(TcpwatchError):
    """The host cannot run this: not root, no BPF, no headers, no tracefs, missing tracepoint."""

    exit_code = 2


class UsageProblem(TcpwatchError):
    """The command line or API arguments are invalid."""

    exit_code = 2


class InputError(TcpwatchError):
    """An input file is unreadable or malformed beyond recovery."""

    exit_code = 1
