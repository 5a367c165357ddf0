"""``python -m aioqueue`` works like the ``aioqueue`` command."""

import sys

from .cli.main import main

sys.exit(main())
