"""``python -m conformance``: CPython's asyncio test-suite, run on sansloop."""

import sys

from ._runner import main

sys.exit(main())
