"""`python -m hilprov` is the `hilprov` command."""

import sys

from hilprov.cli import main

sys.exit(main())
