"""``python -m kws``: the ``kws`` command."""

import sys

from kws.cli import main

sys.exit(main())
