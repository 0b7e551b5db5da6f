"""``python -m wsgiwire``: the same as the ``wsgiwire`` command."""

import sys

from ._cli import main

__all__: list[str] = []

sys.exit(main())
