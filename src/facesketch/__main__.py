"""`python -m facesketch` runs the command line."""

import sys

from facesketch.cli import main

sys.exit(main())
