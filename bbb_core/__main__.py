"""`python -m bbb_core train ...` / `python -m bbb_core bench ...` (see `bbb_core.cli`)."""

import sys

from .cli import main

sys.exit(main())
