"""How facesketch reports: the standard ``logging`` module, under the ``facesketch`` logger.

Library code never prints. Diagnostics (notes, warnings, what was fetched) go to module loggers; what a command prints
as its result (a training run's lines, "already present") goes to the ``facesketch.stdout`` logger. The package adds a
NullHandler, so a notebook or a program shows what it configures (``logging.basicConfig(level=logging.INFO)``) and can
silence it (``logging.getLogger("facesketch").setLevel(logging.ERROR)``). The command line installs ``cli_handlers``:
``facesketch.stdout`` to standard output, everything else to standard error, messages only.
"""

from __future__ import annotations

import logging
import sys

ROOT = "facesketch"
STDOUT = "facesketch.stdout"

logging.getLogger(ROOT).addHandler(logging.NullHandler())


def stdout() -> logging.Logger:
    """The logger of what a command prints as its result (standard output on the command line)."""
    return logging.getLogger(STDOUT)


class _Stream(logging.Handler):
    """Writes the message alone to the stream chosen at emit time (so pytest's captured streams are honoured)."""

    def __init__(self, to_stdout: bool):
        super().__init__()
        self.to_stdout = to_stdout
        self.addFilter(lambda r: (r.name == STDOUT or r.name.startswith(STDOUT + ".")) == to_stdout)

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stdout if self.to_stdout else sys.stderr
        try:
            stream.write(record.getMessage() + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass


def cli_handlers(level: int = logging.INFO) -> None:
    """The command line's reporting: result lines to stdout, the rest to stderr (idempotent; ``remove_cli_handlers``
    undoes it when the command returns, so a program that called ``facesketch.cli.main`` keeps its own logging)."""
    remove_cli_handlers()
    root = logging.getLogger(ROOT)
    root.addHandler(_Stream(True))
    root.addHandler(_Stream(False))
    root.setLevel(level)


def remove_cli_handlers() -> None:
    root = logging.getLogger(ROOT)
    for h in list(root.handlers):
        if isinstance(h, _Stream):
            root.removeHandler(h)
    root.setLevel(logging.NOTSET)
