"""CPython's own ``test.test_asyncio``, run with sansloop as the event loop.

``python -m conformance`` (``nox -s conformance``) runs the selected modules of the running
interpreter's asyncio test-suite, one worker process per module, and prints per-module counts.
``RULES.md`` explains how sansloop is put under the tests and which tests apply; the modules:

* ``_runner``: the command line, the worker processes, the table and ``--json``;
* ``_worker``: one module in one process, one JSON line per test;
* ``_shim``: sansloop as asyncio's default loop, the sansloop ``TestLoop``, loop counting;
* ``_variants``: sansloop twins of the test classes that build CPython loops by hand;
* ``_rules``: the modules per Python version and every exclusion, with its reason.
"""
