"""``python -m loopcompat VERB ...``: see loopcompat._cli."""

import sys

from ._cli import main

sys.exit(main())
