"""``python -m sparsesim`` is the ``sparsesim`` command."""

import sys

from sparsesim.cli import main

sys.exit(main())
