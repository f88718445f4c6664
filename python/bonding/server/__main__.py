"""`python -m bonding.server` = `bonding-server`."""

import sys

from bonding.server.cli import main

sys.exit(main())
