"""`python -m hub.cli`: the same entry point as the `junction` script."""

import sys

from hub.cli.main import main

sys.exit(main())
