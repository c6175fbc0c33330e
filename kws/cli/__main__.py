"""``python -m kws.cli``: the ``kws`` command."""

import sys

from kws.cli import main

sys.exit(main())
