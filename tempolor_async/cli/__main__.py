"""``python -m tempolor_async.cli``: the same as the ``tempolor`` command."""

import sys

from . import main

sys.exit(main())
