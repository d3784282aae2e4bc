"""``python -m simclient``: the ``simclient`` command line."""
import sys

from .cli import main

sys.exit(main())
