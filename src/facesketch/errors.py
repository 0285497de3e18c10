"""The one exception type for mistakes a user can fix (bad flag, missing file, missing weights)."""


class UserError(Exception):
    """Printed by the command line as a single line naming the file or flag and what to do; exit status 2."""
