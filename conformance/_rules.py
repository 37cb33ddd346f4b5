"""Which ``test.test_asyncio`` tests apply to sansloop, and why the others do not.

RULES.md beside this file explains the policy; this module is its machine-readable half.
Every exclusion names the tests it covers (``fnmatch`` patterns on ``Class.test_name``), a
*kind* and a reason of its own.  The hard rule: an exclusion never hides a behaviour difference
of a public API.  A public-API test that fails on sansloop is a bug to fix or report, not a
line here.  The runner reports rules that matched nothing, so a rule cannot outlive its test.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CPYTHON_TESTLOOP",
    "EXCLUSIONS",
    "KINDS",
    "Rule",
    "exclusion",
    "expected_cost",
    "modules_for",
    "rules_for",
    "uses_cpython_testloop",
]

Version = tuple[int, int]

#: What each kind of exclusion means.  "not yet applicable" kinds go away as features land.
KINDS = {
    "child-watcher": (
        "tests asyncio's process-wide child watchers, which sansloop loops do not consult: "
        "each loop reaps its own children (a pidfd or a waiter thread per child)"
    ),
    "cpython-loop": "tests one of CPython's own loop classes; a sansloop twin runs its tests",
    "private": "asserts on a private attribute of CPython's loop implementation",
}


@dataclass(frozen=True)
class Rule:
    """Tests matching ``pattern`` (``Class.test``) do not run, for ``reason``."""

    pattern: str
    kind: str
    reason: str
    since: Version = (3, 11)
    until: Version = (99, 0)  # exclusive
    #: May match nothing (a class that exists on some platforms only).
    optional: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown exclusion kind {self.kind!r}")

    def applies(self, test_id: str, version: Version) -> bool:
        return self.since <= version < self.until and fnmatch.fnmatchcase(test_id, self.pattern)


def _rules(kind: str, reason: str, *patterns: str, **options: Any) -> list[Rule]:
    return [Rule(pattern, kind, reason, **options) for pattern in patterns]


#: The modules of this issue, in report order, with the first version that has each.
_MODULES: dict[str, Version] = {
    "test_tasks": (3, 11),
    "test_futures": (3, 11),
    "test_futures2": (3, 11),
    "test_locks": (3, 11),
    "test_queues": (3, 11),
    "test_runners": (3, 11),
    "test_taskgroups": (3, 11),
    "test_timeouts": (3, 11),
    "test_waitfor": (3, 11),
    "test_pep492": (3, 11),
    "test_context": (3, 11),
    "test_eager_task_factory": (3, 12),
    "test_threads": (3, 11),
    "test_base_events": (3, 11),
    "test_events": (3, 11),
    "test_sock_lowlevel": (3, 11),
    "test_streams": (3, 11),
    "test_server": (3, 11),
    "test_buffered_proto": (3, 11),
    "test_sendfile": (3, 11),
    "test_unix_events": (3, 11),
    "test_subprocess": (3, 11),
    "test_ssl": (3, 11),
    "test_sslproto": (3, 11),
    "test_staggered": (3, 13),
}

#: Rough relative run time, so the slow modules start first.
_COST = {
    "test_tasks": 10,
    "test_events": 6,
    "test_taskgroups": 3,
    "test_base_events": 3,
    "test_sendfile": 2,
    "test_subprocess": 3,
}

_TWIN_EVENTS = "SansloopEventLoopTests"
#: test_events' twins: the default selector's, and Sansloop + the name of each other selector's.
_TWINS_EVENTS = "Sansloop*EventLoopTests"
_TWIN_BASE = "SansloopBaseEventLoopTests"
_TWIN_SELECTOR = "SansloopEventLoopWithSelectorTests"
_TWIN_SENDFILE = "SansloopLoopSockSendfileTests"
#: test_sock_lowlevel's twins, one per selector class (Sansloop + the original's name).
_TWIN_SOCK = "Sansloop*EventLoopTests"

EXCLUSIONS: dict[str, list[Rule]] = {
    "test_base_events": [
        # CPython's loop classes; the sansloop twins (same test methods) run instead.
        *_rules(
            "cpython-loop",
            "builds base_events.BaseEventLoop with a mock selector; "
            f"{_TWIN_BASE} runs these tests on sansloop",
            "BaseEventLoopTests.*",
        ),
        *_rules(
            "cpython-loop",
            f"builds asyncio.SelectorEventLoop; {_TWIN_SELECTOR} runs these tests on sansloop",
            "BaseEventLoopWithSelectorTests.*",
        ),
        *_rules(
            "cpython-loop",
            "builds selector_events.BaseSelectorEventLoop; "
            f"{_TWIN_SENDFILE} runs these tests on sansloop",
            "BaseLoopSockSendfileTests.*",
        ),
        # The twins' tests that look inside BaseEventLoop.
        *_rules(
            "private",
            "calls BaseEventLoop._add_callback() and reads _ready/_scheduled; queueing and "
            "skipping cancelled handles is covered by test_events "
            f"{_TWIN_EVENTS}.test_call_soon and the test_tasks cancellation tests",
            f"{_TWIN_BASE}.test__add_callback_handle",
            f"{_TWIN_BASE}.test__add_callback_cancelled_handle",
        ),
        *_rules(
            "private",
            "fills BaseEventLoop._scheduled by hand and reads the timeout passed to the mock "
            "selector; sansloop's timer heap and timeouts are driven by call_at/call_later in "
            f"{_TWIN_BASE}.test_time_and_call_at, test_events {_TWIN_EVENTS}.test_call_later "
            "and test_timeout_rounding, and every TestLoop test of test_tasks",
            f"{_TWIN_BASE}.test__run_once",
            f"{_TWIN_BASE}.test__run_once_schedule_handle",
        ),
        *_rules(
            "private",
            "checks BaseEventLoop's purge thresholds through _scheduled and "
            "_timer_cancelled_count; sansloop's core has the same rule (tests/core)",
            f"{_TWIN_BASE}.test__run_once_cancelled_event_cleanup",
        ),
        *_rules(
            "private",
            "asserts the handle sits in BaseEventLoop._ready/_scheduled; what call_soon and "
            f"call_later do is tested by test_events {_TWIN_EVENTS}.test_call_soon, "
            f"test_call_later and {_TWIN_BASE}.test_call_later_negative_delays",
            f"{_TWIN_BASE}.test_call_soon",
            f"{_TWIN_BASE}.test_call_later",
        ),
        *_rules(
            "private",
            "checks that BaseEventLoop's transport factories (_make_socket_transport, ...) "
            "are abstract; sansloop has no such hooks",
            f"{_TWIN_BASE}.test_not_implemented",
        ),
        *_rules(
            "private",
            "feeds fake selector events through BaseEventLoop._process_events and the mock "
            "selector; sansloop's driver has neither",
            f"{_TWIN_BASE}.test_single_selecter_event_callback_after_stopping",
        ),
        *_rules(
            "private",
            "asserts the mock selector was polled once with timeout 0; the public half (a "
            "pre-stopped run_forever() returns) is what test_run_once and test_runners check",
            f"{_TWIN_BASE}.test_run_forever_pre_stopped",
        ),
        *_rules(
            "private",
            "counts calls of BaseEventLoop._process_events; the rest of it (setup, _run_once, "
            "cleanup around a custom loop) passes on sansloop up to that assertion",
            f"{_TWIN_BASE}.test_custom_run_forever_integration",
            since=(3, 13),
        ),
        *_rules(
            "private",
            "calls SelectorEventLoop._accept_connection, the private accept loop of CPython's "
            "servers; accepting (and the out-of-descriptors retry) is sansloop's listener's "
            "job, exercised by every server test of tests/compat/test_servers.py and "
            "test_transports.py (1000 simultaneous connections included)",
            f"{_TWIN_SELECTOR}.test_accept_connection_*",
        ),
        *_rules(
            "private",
            "patches asyncio.base_events.socket (or getaddrinfo) so that socket(), bind(), "
            "setblocking() or setsockopt() fail or return mocks, then asserts on the mocks; "
            "sansloop's connection, server and datagram code does not go through "
            "asyncio.base_events.socket.  The same public behaviour (errors raised, sockets "
            "closed, bind/reuse_port/empty-getaddrinfo messages, 'Multiple exceptions', "
            "local_addr) is checked against asyncio in tests/compat/test_servers.py "
            "(test_bad_arguments_fail_as_in_asyncio, test_several_failures_are_combined, "
            "test_address_in_use, test_local_addr_is_bound) and tests/compat/test_datagram.py",
            f"{_TWIN_SELECTOR}.test_create_connection_bluetooth",
            f"{_TWIN_SELECTOR}.test_create_connection_ip_addr",
            f"{_TWIN_SELECTOR}.test_create_connection_ipv6_scope",
            f"{_TWIN_SELECTOR}.test_create_connection_multiple_errors",
            f"{_TWIN_SELECTOR}.test_create_connection_multiple_errors_local_addr",
            f"{_TWIN_SELECTOR}.test_create_connection_no_inet_pton",
            f"{_TWIN_SELECTOR}.test_create_connection_service_name",
            f"{_TWIN_SELECTOR}.test_create_connection_timeout",
            f"{_TWIN_SELECTOR}.test_create_datagram_endpoint_cant_bind",
            f"{_TWIN_SELECTOR}.test_create_datagram_endpoint_ip_addr",
            f"{_TWIN_SELECTOR}.test_create_datagram_endpoint_no_addrinfo",
            f"{_TWIN_SELECTOR}.test_create_datagram_endpoint_nosoreuseport",
            f"{_TWIN_SELECTOR}.test_create_datagram_endpoint_setblk_err",
            f"{_TWIN_SELECTOR}.test_create_datagram_endpoint_socket_err",
            f"{_TWIN_SELECTOR}.test_create_server_cant_bind",
            f"{_TWIN_SELECTOR}.test_create_server_nosoreuseport",
            f"{_TWIN_SELECTOR}.test_create_server_soreuseport_only_defined",
        ),
        *_rules(
            "private",
            "replaces BaseEventLoop._make_ssl_transport() with a mock and asserts on its "
            "arguments; create_connection(ssl=True) defaulting server_hostname to the host is "
            "checked in tests/compat/test_tls.py test_server_hostname_defaults_to_host",
            f"{_TWIN_SELECTOR}.test_create_connection_ssl_server_hostname_default",
        ),
        *_rules(
            "private",
            "calls BaseSelectorEventLoop._sock_sendfile_native(); the zero-copy path's "
            "failures are checked through sock_sendfile() in tests/compat/test_sendfile.py",
            f"{_TWIN_SENDFILE}.test__sock_sendfile_native_failure",
        ),
        *_rules(
            "cpython-loop",
            "expects BaseSelectorEventLoop, which has no zero-copy path, to raise "
            "SendfileNotAvailableError; sansloop's loop really sends with os.sendfile "
            "(test_sendfile's Sansloop*EventLoopTests check the bytes)",
            f"{_TWIN_SENDFILE}.test_sock_sendfile_no_fallback",
        ),
    ],
    "test_events": [
        *_rules(
            "cpython-loop",
            f"builds asyncio.SelectorEventLoop; {_TWIN_EVENTS} runs the same mixins on sansloop",
            "SelectEventLoopTests.*",
            "PollEventLoopTests.*",
            "EPollEventLoopTests.*",
            "KqueueEventLoopTests.*",
            optional=True,  # each selector class exists on some platforms only
        ),
        *_rules(
            "private",
            "patches asyncio.base_events.socket and getaddrinfo so that binding to made-up "
            "addresses succeeds on mock sockets; several hosts are served for real in "
            "tests/compat/test_servers.py test_server_on_several_hosts",
            f"{_TWINS_EVENTS}.test_create_server_multiple_hosts_ipv4",
            f"{_TWINS_EVENTS}.test_create_server_multiple_hosts_ipv6",
        ),
        *_rules(
            "private",
            "its public assertions (a pending sock_recv() is cancelled promptly) pass on "
            "sansloop; it then calls the selector loop's private _stop_serving() to drop the "
            "socket's registration, which sansloop's driver drops when the operation is "
            "cancelled. sock_recv() cancellation is also covered by test_sock_lowlevel "
            "Sansloop*EventLoopTests.test_sock_client_racing",
            f"{_TWINS_EVENTS}.test_prompt_cancellation",
        ),
    ],
    "test_sock_lowlevel": [
        *_rules(
            "cpython-loop",
            f"builds asyncio.SelectorEventLoop (or ProactorEventLoop); {_TWIN_SOCK} run the "
            "same tests on sansloop with the same selector",
            "KqueueEventLoopTests.*",
            "EPollEventLoopTests.*",
            "PollEventLoopTests.*",
            "SelectEventLoopTests.*",
            "ProactorEventLoopTests.*",
            optional=True,  # each selector class exists on some platforms only
        ),
    ],
    "test_streams": [],
    "test_sendfile": [
        *_rules(
            "cpython-loop",
            "builds asyncio.SelectorEventLoop (or ProactorEventLoop); Sansloop*EventLoopTests "
            "run the same tests on sansloop with the same selector",
            "KqueueEventLoopTests.*",
            "EPollEventLoopTests.*",
            "PollEventLoopTests.*",
            "SelectEventLoopTests.*",
            "ProactorEventLoopTests.*",
            optional=True,  # each selector class exists on some platforms only
        ),
    ],
    "test_sslproto": [
        *_rules(
            "cpython-loop",
            "builds asyncio.SelectorEventLoop (or ProactorEventLoop); SansloopStartTLSTests "
            "runs the same tests on sansloop",
            "SelectorStartTLSTests.*",
            "ProactorStartTLSTests.*",
            optional=True,  # the Proactor class exists on Windows only
        ),
    ],
    "test_server": [
        *_rules(
            "cpython-loop",
            "builds asyncio.SelectorEventLoop (or ProactorEventLoop); SansloopStartServerTests "
            "runs the same tests on sansloop",
            "SelectorStartServerTests.*",
            "ProactorStartServerTests.*",
            optional=True,
        ),
    ],
    "test_buffered_proto": [
        *_rules(
            "cpython-loop",
            "builds asyncio.SelectorEventLoop (or ProactorEventLoop); "
            "SansloopBufferedProtocolTests runs the same tests on sansloop",
            "BufferedProtocolSelectorTests.*",
            "BufferedProtocolProactorTests.*",
            optional=True,
        ),
    ],
}
EXCLUSIONS["test_unix_events"] = [
    *_rules(
        "cpython-loop",
        "builds asyncio.SelectorEventLoop; SansloopUnixSocketTests runs the same tests "
        "(create_unix_server/create_unix_connection arguments, paths, stale sockets) on sansloop",
        "SelectorEventLoopUnixSocketTests.*",
    ),
    *_rules(
        "cpython-loop",
        "builds asyncio.SelectorEventLoop and patches asyncio.unix_events.signal to check "
        "_UnixSelectorEventLoop's calls; sansloop's add/remove_signal_handler run for real in "
        f"test_events {_TWIN_EVENTS}.test_add_signal_handler, test_signal_handling_args and "
        "test_signal_handling_while_selecting, TestFork.test_fork_signal_handling here, and "
        "tests/compat/test_signals.py",
        "SelectorEventLoopSignalTests.*",
    ),
    *_rules(
        "private",
        "patches asyncio.unix_events.socket so that bind() fails on a mock, then checks the "
        "mock was closed; the same public behaviour (a failing bind raises and leaks no "
        "descriptor) is tested in tests/compat/test_conformance_fixes.py "
        "test_unix_server_bind_failure_closes_the_socket, on sansloop and asyncio",
        "SansloopUnixSocketTests.test_create_unix_server_bind_error",
    ),
    *_rules(
        "private",
        "calls the selector loop's private _sock_sendfile_native()/_sock_sendfile_native_impl() "
        "and reads _selector; the same cases through the public sock_sendfile() (no regular "
        "file, os.sendfile missing or failing at once, cancellation mid-transfer) are in "
        "tests/compat/test_sendfile.py",
        "SelectorEventLoopUnixSockSendfileTests.*",
    ),
]
EXCLUSIONS["test_subprocess"] = [
    *_rules(
        "child-watcher",
        "attaches asyncio's FastChildWatcher to the loop: its SIGCHLD handler reaps every "
        "child of the process with waitpid(-1), so it takes the exit status from the loop's "
        "own reaper (asyncio deprecates that watcher from 3.12). The same tests run "
        "on sansloop under the Threaded, Safe and Pidfd watcher classes, whose watchers leave "
        "other children alone",
        "SubprocessFastWatcherTests.*",
    ),
    *_rules(
        "child-watcher",
        "checks that the loop asks the policy's child watcher (an inactive mock) before "
        "starting a child; sansloop loops never consult it. sansloop's policy hands out "
        "asyncio's default watcher: tests/compat/test_policy.py "
        "test_child_watcher_is_asyncios_default",
        "GenericWatcherTests.test_create_subprocess_fails_with_inactive_watcher",
    ),
]
EXCLUSIONS["test_server"] += _rules(
    "private",
    "calls Server._attach()/_detach() with 3.12's signature (a client count, no transport); "
    "the wait_closed() rule it checks (wait until closed and the last client has gone) is "
    "tested publicly in tests/compat/test_servers.py test_wait_closed_waits_for_the_last_client",
    "TestServer2.test_wait_closed_basic",
    "TestServer2.test_wait_closed_race",
    since=(3, 12),
    until=(3, 13),
)

#: Tests that keep CPython's own test_utils.TestLoop, because they patch or inspect a
#: BaseEventLoop member that the sansloop TestLoop does not have.  They still run; they just
#: do not exercise sansloop (their "loops" count is 0).
CPYTHON_TESTLOOP: dict[str, list[Rule]] = {
    "test_tasks": _rules(
        "private",
        "patches BaseEventLoop.call_exception_handler on the class and asserts on the mock",
        "CoroutineGatherTests.test_issue46672",
    ),
    "test_unix_events": _rules(
        "private",
        "builds CPython's private _UnixReadPipeTransport/_UnixWritePipeTransport on mocked "
        "pipes and asserts on the TestLoop's _add_reader/_remove_reader bookkeeping; "
        "sansloop's pipe transports run for real in test_events' Sansloop*EventLoopTests "
        "(test_read_pipe, test_write_pipe*, test_*pty*) and tests/compat/test_pipes.py",
        "UnixReadPipeTransportTests.*",
        "UnixWritePipeTransportTests.*",
    ),
}


def modules_for(version: Version) -> list[str]:
    """The conformance modules that exist on Python ``version``."""
    return [name for name, since in _MODULES.items() if version >= since]


def expected_cost(module: str) -> int:
    return _COST.get(module, 1)


def rules_for(module: str, version: Version) -> list[Rule]:
    """Every rule (exclusion or CPython TestLoop) in force for ``module`` on ``version``."""
    rules = [*EXCLUSIONS.get(module, ()), *CPYTHON_TESTLOOP.get(module, ())]
    return [rule for rule in rules if rule.since <= version < rule.until]


def exclusion(module: str, test_id: str, version: Version) -> Rule | None:
    """The rule that keeps ``test_id`` (``Class.test``) from running, if any."""
    for rule in EXCLUSIONS.get(module, ()):
        if rule.applies(test_id, version):
            return rule
    return None


def uses_cpython_testloop(module: str, test_id: str, version: Version) -> bool:
    """Whether ``test_id`` keeps CPython's ``TestLoop`` instead of sansloop's."""
    return any(rule.applies(test_id, version) for rule in CPYTHON_TESTLOOP.get(module, ()))
