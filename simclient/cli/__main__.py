"""``python -m simclient.cli``: the ``simclient`` command line."""
import sys

from .app import main

sys.exit(main())
