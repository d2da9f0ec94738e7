"""`python -m hilprov` is the `hilprov` command."""

from hilprov.cli import main

raise SystemExit(main())
