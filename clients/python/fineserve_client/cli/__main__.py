"""``python -m fineserve_client.cli``: the fineserve command."""

import sys

from . import main

sys.exit(main())
