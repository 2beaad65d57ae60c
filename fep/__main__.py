"""``python -m fep`` runs the CLI."""

import sys

from fep.cli import main

sys.exit(main())
