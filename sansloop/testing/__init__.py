"""Testing asyncio code in virtual time, with pytest.

Installing sansloop registers a pytest plugin (entry point ``sansloop``).  It changes
nothing until a test asks for virtual time::

    import asyncio
    import pytest

    @pytest.mark.virtual_time
    async def test_retry_backs_off(virtual_clock):
        await asyncio.sleep(3600)                      # returns at once
        assert asyncio.get_running_loop().time() == 3600.0

* ``@pytest.mark.virtual_time(loop_scope=..., origin=0.0, auto_advance=True, seed=0,
  explore=False)`` runs the test on a sansloop loop on the virtual driver (``seed`` and
  ``explore`` go to its :class:`~sansloop.drivers.VirtualClock`).  Without
  pytest-asyncio the plugin runs ``async def`` tests itself; ``loop_scope`` ("function",
  "class", "module", "package", "session") lets tests share a loop, whose time only moves
  forward.
* With pytest-asyncio (>= 1.4), combine it with ``@pytest.mark.asyncio(loop_scope=...)``
  (or use ``asyncio_mode = "auto"``): the plugin hands pytest-asyncio a virtual loop
  through its ``pytest_asyncio_loop_factories`` hook, so async fixtures and loop scopes work
  as usual.  The ini option ``sansloop_virtual_time = true`` makes every async test virtual.
* Fixtures: ``virtual_loop`` (the test's loop) and ``virtual_clock`` (its
  :class:`sansloop.drivers.VirtualClock`: ``advance()``, ``advance_to_next_timer()``,
  ``run_until_idle()``, ``step()``, ``hold_time()``, ``statistics()``).  A sync test marked
  ``virtual_time`` gets them too and drives the loop from outside.
* ``patch_clocks=True`` (and ``wall_origin=``) in the marker, or the ini option
  ``sansloop_patch_clocks = true`` for every virtual test, makes ``time.monotonic()``,
  ``time.time()``, ``datetime.now()`` and friends read the virtual clock in code running in
  the test's loop (see :class:`sansloop.drivers.VirtualClock`); other threads keep real time.
* A deadlock (nothing can ever run again) fails the test at once with
  :class:`sansloop.drivers.VirtualDeadlock`, naming every waiting task, what it awaits and
  where.

Seeded runs: :func:`run_virtual` runs a coroutine function on a fresh virtual clock with
a ``seed`` (and, with ``explore=True``, seeded perturbation of what asyncio leaves
undefined: the order of ready connections, timer lateness, network jitter) and notes the
seed on any failure; :func:`check_determinism` runs it twice and compares traces;
:func:`seeds` is the Hypothesis strategy that draws the seed, so Hypothesis shrinks it::

    @hypothesis.given(seed=sansloop.testing.seeds())
    def test_no_lost_update(seed):
        sansloop.testing.run_virtual(scenario, seed=seed, explore=True)

Without pytest-asyncio, async fixtures are not supported (pytest itself rejects them).
:func:`virtual_loop_factory` is the ``loop_factory`` the plugin uses, for ``asyncio.Runner``
or a ``pytest_asyncio_loop_factories`` hook of your own.
"""

from ._explore import NondeterminismError as NondeterminismError
from ._explore import check_determinism as check_determinism
from ._explore import run_virtual as run_virtual
from ._explore import seeds as seeds
from ._factory import virtual_loop_factory as virtual_loop_factory

__all__ = [
    "NondeterminismError",
    "check_determinism",
    "run_virtual",
    "seeds",
    "virtual_loop_factory",
]
