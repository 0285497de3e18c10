"""The one exception type for mistakes a user can fix (bad argument, missing file, missing weights)."""


class UserError(Exception):
    """Printed by the command line as a single line naming the file or flag and what to do; exit status 2.

    ``arg``: the library argument the message starts with (e.g. 'model' for "model X: ..."); the command line shows
    it as its flag ('--model X: ...'), a Python caller sees the argument it passed.
    """

    def __init__(self, message: str, *, arg: str | None = None):
        super().__init__(message)
        self.arg = arg

    def cli_message(self) -> str:
        """The message with its leading argument name written as the command line's flag."""
        msg = str(self)
        if self.arg and msg.startswith(self.arg + " "):
            return "--" + self.arg.replace("_", "-") + msg[len(self.arg) :]
        return msg
