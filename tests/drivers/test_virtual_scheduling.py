"""A selection of the scheduling behaviour tests, run unchanged on the virtual driver.

``tests/compat/test_scheduling.py`` checks sansloop against asyncio through the ``any_loop``
and ``loop`` fixtures; here those fixtures give a virtual-time loop instead.  Left out: tests
whose other threads post work unannounced (the virtual clock cannot see them, by design:
see ``test_virtual.py``) and the busy-chain test (under virtual time a callback chain that
never lets the loop go idle keeps time still, so its timer never becomes due).
"""

from __future__ import annotations

import importlib.util
import pathlib
from collections.abc import Iterator

import pytest

import sansloop
from sansloop.drivers import virtual_clock

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

_SOURCE = pathlib.Path(__file__).parent.parent / "compat" / "test_scheduling.py"
_SPEC = importlib.util.spec_from_file_location("_scheduling_on_virtual_time", _SOURCE)
assert _SPEC is not None
assert _SPEC.loader is not None
_scheduling = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_scheduling)

_SELECTED = [
    "test_call_soon_is_fifo",
    "test_call_soon_returns_a_handle_and_passes_args",
    "test_cancelled_handle_does_not_run",
    "test_cancel_from_earlier_in_the_same_batch",
    "test_callback_scheduled_by_a_callback_runs_next_iteration",
    "test_stop_from_a_timer_lets_ready_callbacks_of_that_batch_run",
    "test_call_later_runs_in_deadline_order",
    "test_call_at_runs_in_deadline_order",
    "test_equal_deadlines_run_in_scheduling_order",
    "test_equal_deadlines_keep_their_order_through_a_heap_rebuild",
    "test_timer_handle_when_matches_loop_time",
    "test_loop_time_is_monotonic",
    "test_cancelled_timer_does_not_run",
    "test_timer_cancelled_by_an_earlier_timer",
    "test_many_cancelled_timers_leave_the_live_ones_running",
    "test_far_timer_does_not_keep_a_stopped_loop_waiting",
    "test_none_delay_and_none_when",
    "test_call_soon_threadsafe_from_the_loop_thread",
    "test_call_soon_and_call_soon_threadsafe_share_one_fifo",
    "test_callbacks_run_in_the_given_context",
    "test_callbacks_copy_the_context_at_scheduling_time",
    "test_tasks_copy_the_context_and_pass_it_to_their_callbacks",
    "test_create_task_with_a_context",
    "test_create_future",
    "test_create_task_and_name",
    "test_task_factory",
    "test_eager_task_factory",
]
for _name in _SELECTED:
    globals()[_name] = getattr(_scheduling, _name)
del _name


@pytest.fixture
def any_loop() -> Iterator[sansloop.EventLoop]:
    """Overrides the conftest fixture: a loop on the virtual driver."""
    new = sansloop.new_event_loop(driver="virtual")
    try:
        yield new
    finally:
        new.close()


@pytest.fixture
def loop(any_loop: sansloop.EventLoop) -> sansloop.EventLoop:
    return any_loop


def test_the_selection_runs_on_the_virtual_driver(any_loop: sansloop.EventLoop) -> None:
    assert virtual_clock(any_loop).loop is any_loop
    assert all(callable(globals()[name]) for name in _SELECTED)
