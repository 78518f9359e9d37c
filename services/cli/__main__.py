"""``python -m services.cli``: the same entry point as the ``corral`` script."""

from services.cli import main

raise SystemExit(main())
