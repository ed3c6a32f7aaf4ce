"""``python -m og_settle.cli`` runs the ``og-settle`` command line."""

import sys

from og_settle.cli import main

sys.exit(main())
