"""``python -m ap_actors.cli``: the ``ap`` command."""

import sys

from ap_actors.cli import main

sys.exit(main())
