"""``python -m tiny_cats.commands``: the ``tiny-cats`` command."""

import sys

from . import main

sys.exit(main())
