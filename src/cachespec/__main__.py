"""``python -m cachespec check ...`` is ``cachespec check ...``."""

from cachespec.conformance.cli import main

raise SystemExit(main())
