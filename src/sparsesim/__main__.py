"""``python -m sparsesim`` is the ``sparsesim`` command."""

import sys

from sparsesim.cli.main import main

sys.exit(main())
