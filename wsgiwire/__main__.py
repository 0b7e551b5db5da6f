"""``python -m wsgiwire``: the same as the ``wsgiwire`` command."""

import sys

from ._cli import main

sys.exit(main())
