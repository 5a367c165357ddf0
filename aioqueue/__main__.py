"""``python -m aioqueue`` works like the ``aioqueue`` command."""

import sys

from .cli import main

sys.exit(main())
