"""`python -m molgen` runs the command-line interface."""

import sys

from molgen.cli import main

sys.exit(main())
