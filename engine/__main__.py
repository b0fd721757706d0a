"""``python -m pcapconstrictor.engine``: the command line, as the installed script runs it."""

import sys

from pcapconstrictor.engine.commands.cli import main

sys.exit(main())
