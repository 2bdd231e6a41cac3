"""``python -m agentmem``: the ``agentmem`` command, for when its script is not on PATH."""

import sys

from agentmem.cli import main

sys.exit(main())
