"""Issue 11 (interruption and leaks), without a cluster: whose namespace may be swept, what the sweep
touches, when the registry lets go of a name, and the SIGTERM handler's life."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client import ApiException

from pytest_stateful.errors import StatefulError
from pytest_stateful.workload import cleanup, session
from pytest_stateful.workload.cleanup import (
    HOST_ANNOTATION,
    KEPT_ANNOTATION,
    OWNED_LABEL,
    PID_ANNOTATION,
    Here,
    Owner,
    session_ended,
    sweep,
)

NOW = 1_800_000_000.0
BOOT = "6f1c0e0e-0000-4000-8000-000000000001"
PIDNS = "pid:[4026531836]"


def here(running: dict[int, str]) -> Here:
    """This host, with a process table of pid -> start time."""
    return Here("builder", BOOT, PIDNS, start_time=running.get)


def owner(pid: int = 4242, host: str = "builder", start: str = "777", age: float = 10.0, **kw: Any) -> Owner:
    process = kw.pop("process", f"{BOOT}|{PIDNS}|{start}")
    return Owner("a1b2c3d4e5f6", pid, host, process, NOW - age, **kw)


# -- the liveness decision ---------------------------------------------------------------------------


def test_a_running_owner_on_this_host_is_alive() -> None:
    assert session_ended(owner(), here({4242: "777"}), NOW) is None


def test_a_dead_owner_on_this_host_has_ended_at_once() -> None:
    assert session_ended(owner(age=1.0), here({}), NOW) == "pid 4242 is no longer running"


def test_a_reused_pid_is_not_the_owner() -> None:
    assert session_ended(owner(), here({4242: "999"}), NOW) == "pid 4242 now belongs to another process"


def test_without_a_start_time_a_running_pid_counts_as_the_owner() -> None:
    # A system without /proc records no start time: a running pid is taken as alive (the safe side).
    assert session_ended(owner(start=""), here({4242: "999"}), NOW) is None
    assert session_ended(owner(process=""), here({4242: ""}), NOW) is None


@pytest.mark.parametrize(
    ("host", "process"),
    [
        ("ci-runner-7", f"{BOOT}|{PIDNS}|777"),  # another host
        ("builder", f"{BOOT}|pid:[4026532000]|777"),  # a container with its own pid namespace, same name
        ("builder", f"other-boot|{PIDNS}|777"),  # another machine of the same name, or a reboot
    ],
)
def test_an_owner_this_host_cannot_see_is_judged_by_age_only(host: str, process: str) -> None:
    # Its pid means nothing here: even a pid that is not running here must not condemn it.
    young = owner(host=host, process=process, age=3599)
    assert session_ended(young, here({}), NOW) is None
    old = owner(host=host, process=process, age=3 * 3600)
    assert session_ended(old, here({4242: "777"}), NOW) == f"created on {host} 3 h ago"


def test_a_namespace_without_an_owner_is_judged_by_age() -> None:
    # Namespaces of an earlier version carry only the owned label.
    unknown = Owner(created=NOW - 7200)
    assert session_ended(unknown, here({}), NOW) == "created by an earlier version of the plugin 2 h ago"
    assert session_ended(Owner(created=NOW - 60), here({}), NOW) is None
    assert session_ended(Owner(), here({}), NOW) is None


def test_this_process_is_alive_by_the_real_process_table() -> None:
    me = cleanup.this_process()
    assert me.pid == os.getpid() and me.session
    assert session_ended(me, Here.now(), NOW) is None


def test_a_finished_child_is_seen_as_ended_by_the_real_process_table() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    gone = Owner("s", pid, Here.now().host, "", NOW)
    assert session_ended(gone, Here.now(), NOW) == f"pid {pid} is no longer running"


def test_the_owner_survives_the_round_trip_through_metadata() -> None:
    me = cleanup.this_process()
    meta = SimpleNamespace(labels=me.labels(), annotations=me.annotations(), creation_timestamp=None)
    back = Owner.of(meta)
    assert (back.session, back.pid, back.host, back.process) == (me.session, me.pid, me.host, me.process)
    assert back.created is not None and abs(back.created - (me.created or 0)) < 1.0
    assert me.labels()[OWNED_LABEL] == "true"


# -- the sweep, against a fake API -----------------------------------------------------------------


def _ns(name: str, notes: dict[str, str], terminating: bool = False, created: float = NOW - 10) -> Any:
    meta = SimpleNamespace(
        name=name,
        uid=f"uid-{name}",
        labels={OWNED_LABEL: "true"},
        annotations=notes,
        creation_timestamp=datetime.fromtimestamp(created, UTC),
        deletion_timestamp="now" if terminating else None,
    )
    return SimpleNamespace(metadata=meta)


def _pv(name: str, phase: str, namespace: str) -> Any:
    return SimpleNamespace(
        metadata=SimpleNamespace(name=name, deletion_timestamp=None),
        spec=SimpleNamespace(claim_ref=SimpleNamespace(namespace=namespace, name="www-web-0")),
        status=SimpleNamespace(phase=phase),
    )


class FakeCore:
    """The calls the sweep makes, on lists given up front; deletes are recorded."""

    def __init__(self, namespaces: list[Any], volumes: list[Any], existing: set[str]) -> None:
        self.namespaces, self.volumes, self.existing = namespaces, volumes, existing
        self.selectors: list[str] = []
        self.deleted: list[str] = []
        self.deleted_volumes: list[str] = []

    def list_namespace(self, label_selector: str = "", **_: Any) -> Any:
        self.selectors.append(label_selector)
        return SimpleNamespace(items=self.namespaces)

    def delete_namespace(self, name: str, body: Any = None, **_: Any) -> None:
        assert body["preconditions"]["uid"] == f"uid-{name}"
        self.deleted.append(name)

    def list_persistent_volume(self, **_: Any) -> Any:
        return SimpleNamespace(items=self.volumes)

    def read_namespace(self, name: str, **_: Any) -> Any:
        if name not in self.existing:
            raise ApiException(status=404, reason="Not Found")
        return SimpleNamespace()

    def delete_persistent_volume(self, name: str, **_: Any) -> None:
        self.deleted_volumes.append(name)


def _mine(pid: int) -> dict[str, str]:
    return {PID_ANNOTATION: str(pid), HOST_ANNOTATION: "builder", cleanup.PROCESS_ANNOTATION: f"{BOOT}|{PIDNS}|1"}


def _fake() -> FakeCore:
    return FakeCore(
        [
            _ns("stateful-dead-aaaaaa", _mine(100)),
            _ns("stateful-dead-bbbbbb", _mine(100)),
            _ns("stateful-live-cccccc", _mine(200)),
            _ns("stateful-kept-dddddd", {**_mine(100), KEPT_ANNOTATION: "true"}),
            _ns("stateful-going-eeeeee", _mine(100), terminating=True),
            _ns("stateful-foreign-ffffff", {PID_ANNOTATION: "1", HOST_ANNOTATION: "elsewhere"}, created=NOW - 600),
        ],
        [
            _pv("pv-gone", "Released", "stateful-old-123abc"),  # its namespace is gone: deleted
            _pv("pv-bound", "Bound", "stateful-old-123abc"),
            _pv("pv-terminating", "Released", "stateful-going-eeeeee"),  # namespace still there
            _pv("pv-not-ours", "Released", "team-db"),  # not a name the plugin gives
        ],
        existing={"stateful-going-eeeeee", "team-db"},
    )


def test_the_sweep_deletes_only_namespaces_of_ended_sessions_and_their_released_volumes() -> None:
    core = _fake()
    result = sweep(core, here=here({200: "1"}), now=NOW)  # type: ignore[arg-type]
    assert core.selectors == [f"{OWNED_LABEL}=true"]
    assert core.deleted == ["stateful-dead-aaaaaa", "stateful-dead-bbbbbb"]
    assert sorted(result.live) == ["stateful-foreign-ffffff", "stateful-live-cccccc"]
    assert result.kept == ["stateful-kept-dddddd"]
    assert core.deleted_volumes == ["pv-gone"]
    assert result.summary() == (
        "deleted 2 namespaces left by sessions that ended: stateful-dead-aaaaaa, stateful-dead-bbbbbb "
        "(pid 100 is no longer running); deleted 1 Released PersistentVolume of such namespaces: pv-gone"
    )


def test_kept_and_all_widen_the_sweep_and_dry_run_deletes_nothing() -> None:
    core = _fake()
    result = sweep(core, kept=True, dry_run=True, here=here({200: "1"}), now=NOW)  # type: ignore[arg-type]
    assert core.deleted == [] and core.deleted_volumes == []
    assert sorted(result.deleted) == ["stateful-dead-aaaaaa", "stateful-dead-bbbbbb", "stateful-kept-dddddd"]
    assert result.summary("would delete").startswith("would delete 3 namespaces")
    core = _fake()
    sweep(core, everything=True, here=here({200: "1"}), now=NOW)  # type: ignore[arg-type]
    assert sorted(core.deleted) == [
        "stateful-dead-aaaaaa",
        "stateful-dead-bbbbbb",
        "stateful-foreign-ffffff",
        "stateful-kept-dddddd",
        "stateful-live-cccccc",
    ]


def test_a_sweep_that_cannot_reach_the_api_server_says_so_and_raises_nothing() -> None:
    class Failing(FakeCore):
        def list_namespace(self, label_selector: str = "", **_: Any) -> Any:
            raise ApiException(status=401, reason="Unauthorized")

    result = sweep(Failing([], [], set()), here=here({}), now=NOW)  # type: ignore[arg-type]
    assert result.summary() == "could not finish: list the namespaces pytest-stateful created: 401 Unauthorized"


def test_a_namespaced_account_that_may_not_list_namespaces_sweeps_nothing_and_says_nothing() -> None:
    # --stateful-namespace with an account bound to one namespace: it cannot have created any.
    class Refused(FakeCore):
        def list_namespace(self, label_selector: str = "", **_: Any) -> Any:
            raise ApiException(status=403, reason="Forbidden")

    result = sweep(Refused([], [], set()), here=here({}), now=NOW)  # type: ignore[arg-type]
    assert result.summary() == "" and result.deleted == {}


# -- the registry: a name leaves it only once its deletion was accepted -----------------------------


class RegistryCore:
    def __init__(self, delete: Any) -> None:
        self.delete = delete
        self.api_client = None
        self.patched: list[Any] = []

    def create_namespace(self, body: Any, **_: Any) -> None:
        self.created = body

    def delete_namespace(self, name: str, **_: Any) -> None:
        self.delete(name)

    def patch_namespace(self, name: str, body: Any, **_: Any) -> None:
        self.patched.append(body)


def _create(core: RegistryCore) -> str:
    return session.create_namespace(SimpleNamespace(core=core), "test registry")  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _empty_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "_created", {})
    monkeypatch.setattr(session, "_exit_hook", True)


def test_the_created_namespace_carries_its_owner() -> None:
    core = RegistryCore(lambda _name: None)
    _create(core)
    meta = core.created["metadata"]
    assert meta["labels"][OWNED_LABEL] == "true" and meta["labels"][cleanup.SESSION_LABEL]
    assert meta["annotations"][PID_ANNOTATION] == str(os.getpid())
    assert set(meta["annotations"]) >= {HOST_ANNOTATION, cleanup.CREATED_ANNOTATION, cleanup.PROCESS_ANNOTATION}


def test_an_interrupted_delete_keeps_the_name_for_the_final_cleanup() -> None:
    def interrupted(_name: str) -> None:
        raise KeyboardInterrupt

    core = RegistryCore(interrupted)
    name = _create(core)
    with pytest.raises(KeyboardInterrupt):
        session.delete_namespace(name)
    assert name in session._created
    core.delete = lambda _name: None
    assert session.delete_leftover_namespaces() == []
    assert session._created == {}


def test_a_refused_delete_keeps_the_name_and_gone_or_terminating_lets_it_go() -> None:
    def refuse(_name: str) -> None:
        raise ApiException(status=403, reason="Forbidden")

    core = RegistryCore(refuse)
    name = _create(core)
    assert not session.delete_namespace(name)
    assert name in session._created
    for status in (404, 409):

        def answer(_name: str, status: int = status) -> None:
            raise ApiException(status=status, reason="")

        core.delete = answer
        name = _create(core)
        assert session.delete_namespace(name)
        assert name not in session._created


def test_a_kept_namespace_is_marked_for_the_sweep_to_leave_alone() -> None:
    core = RegistryCore(lambda _name: None)
    name = _create(core)
    session.forget_namespace(name)
    assert core.patched == [{"metadata": {"annotations": {KEPT_ANNOTATION: "true"}}}]
    assert session._created == {}


def test_a_refused_create_is_not_registered_but_an_unanswered_one_is() -> None:
    core = RegistryCore(lambda _name: None)

    def conflict(body: Any, **_: Any) -> None:
        raise ApiException(status=409, reason="AlreadyExists")

    core.create_namespace = conflict  # type: ignore[method-assign]
    with pytest.raises(StatefulError):
        _create(core)
    assert session._created == {}

    def no_answer(body: Any, **_: Any) -> None:
        raise ConnectionResetError(104, "Connection reset by peer")

    core.create_namespace = no_answer  # type: ignore[method-assign]
    with pytest.raises(StatefulError):
        _create(core)
    assert len(session._created) == 1  # it may exist: the final cleanup deletes it (or finds it gone)


# -- SIGTERM is Ctrl-C for the session, and only for the session --------------------------------


def test_sigterm_raises_keyboard_interrupt_during_the_session_and_is_restored_after(pytester: pytest.Pytester) -> None:
    from pytest_stateful.plugin.run import restore_sigterm, stop_on_sigterm

    saved = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        config = pytester.parseconfig()
        stop_on_sigterm(config)
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs at once, in this thread, and cuts the sleep short
        restore_sigterm(config)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        # Someone else's handler (or an ignored SIGTERM) is left as it is.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_on_sigterm(config)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        restore_sigterm(config)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, saved)
