"""`python -m bclab.cli`: the `bclab` command."""

import sys

from bclab.cli import main

sys.exit(main())
