"""``python -m posmon.cli``: the ``posmon`` command."""

import sys

from posmon.cli import main

sys.exit(main())
