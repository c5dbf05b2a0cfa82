"""Issue 11 (interruption and leaks) on the local cluster: pytest runs stopped by SIGINT, SIGTERM and
SIGKILL at random moments, then a new session; nothing of theirs may be left: no namespace, no
process, no Released PersistentVolume. `pytest-stateful clean` by hand, on namespaces whose owners
are made up to be dead, alive, far away or kept.

Trials per signal: $PYTEST_STATEFUL_SIGNAL_TRIALS (default 3); the random delays come from
$PYTEST_STATEFUL_SIGNAL_SEED when set (the seed is printed, to replay a failure). Each trial
appends its counts to $PYTEST_STATEFUL_SIGNAL_LOG when set (the figures in docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest
from kubernetes import client

from pytest_stateful import ClusterHandle
from pytest_stateful.workload.cleanup import (
    HOST_ANNOTATION,
    KEPT_ANNOTATION,
    OWNED_LABEL,
    PID_ANNOTATION,
    Owner,
    this_process,
)

WEB = Path(__file__).resolve().parents[2] / "examples" / "web"
TRIALS = int(os.environ.get("PYTEST_STATEFUL_SIGNAL_TRIALS", "3"))
SEED = int(os.environ.get("PYTEST_STATEFUL_SIGNAL_SEED") or secrets.randbits(32))
# A whole run of the small project takes ~7.5 s: signals between 1 and 7.5 s land in start-up,
# namespace creation, apply, steps, teardown and the session's end.
DELAYS = (1.0, 7.5)
EXIT_SECONDS = 60.0  # how long an interrupted run may take to finish its cleanup and exit
GONE_SECONDS = 90.0  # how long namespaces may take to terminate (pods, claims, volumes go first)


def _project(root: Path, tok: str) -> None:
    """A fixture test with claims and steps, a YAML spec, and a bare namespace; every namespace
    of the run has `tok` in its name."""
    (root / f"test_run_{tok}.py").write_text(
        f"""
def test_web_{tok}(stateful):
    web = stateful(["{WEB / "svc.yaml"}", "{WEB / "statefulset.yaml"}"])
    web.scale(3)
    web.delete_pod(0)
    web.scale(1)

def test_bare_{tok}(stateful_namespace):
    pass
"""
    )
    (root / f"spec_{tok}.stateful.yaml").write_text(
        f"name: spec {tok}\nmanifests: [{WEB / 'svc.yaml'}, {WEB / 'statefulset.yaml'}]\n"
        "steps:\n  - delete_pod: 1\n  - scale: 3\nexpect: [stable_identity]\n"
    )


def _namespaces(core: client.CoreV1Api, tok: str) -> dict[str, str]:
    return {
        str(ns.metadata.name): "Terminating" if ns.metadata.deletion_timestamp else str(ns.status.phase)
        for ns in core.list_namespace().items
        if tok in ns.metadata.name
    }


def _volumes(core: client.CoreV1Api, toks: list[str]) -> dict[str, str]:
    return {
        str(pv.metadata.name): str(pv.status.phase)
        for pv in core.list_persistent_volume().items
        if pv.spec.claim_ref is not None and any(t in str(pv.spec.claim_ref.namespace) for t in toks)
    }


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(what: str, done: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"after {seconds:.0f} s: {what}")
        time.sleep(0.5)


@dataclass
class Trial:
    signal: str
    tok: str
    delay: float
    seconds: float = 0.0
    returncode: int | None = None
    namespaces: dict[str, str] = field(default_factory=dict)
    # Namespaces of the run still Active once it exited: what its own cleanup left.
    leaked: list[str] = field(default_factory=list)
    output: str = ""


def _trial(core: client.CoreV1Api, root: Path, sig: signal.Signals, rng: random.Random) -> Trial:
    tok = secrets.token_hex(3)
    project = root / f"{sig.name.lower()}-{tok}"
    project.mkdir()
    _project(project, tok)
    trial = Trial(sig.name, tok, round(rng.uniform(*DELAYS), 2))
    started = time.monotonic()
    # A session of its own, so the whole process group is known and can be checked for leftovers.
    # SIGINT at its default: a shell's background job (CI, nohup) inherits it ignored, and Python
    # then leaves it ignored, so a SIGINT trial would test nothing.
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(project)],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        time.sleep(trial.delay)
        proc.send_signal(sig)
        trial.output, _ = proc.communicate(timeout=EXIT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{sig.name} after {trial.delay} s: pytest did not exit within {EXIT_SECONDS:.0f} s:\n{output}")
    trial.seconds = round(time.monotonic() - started, 1)
    trial.returncode = proc.returncode
    # Nothing of the run may still run: not pytest, not a child of it.
    _wait(f"processes of the {sig.name} run are left", lambda: not _group_alive(proc.pid), 10)
    trial.namespaces = _namespaces(core, tok)
    trial.leaked = sorted(n for n, phase in trial.namespaces.items() if phase != "Terminating")
    _log({k: v for k, v in asdict(trial).items() if k != "output"})
    return trial


def _log(record: dict[str, object]) -> None:
    log = os.environ.get("PYTEST_STATEFUL_SIGNAL_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps(record) + "\n")


def _next_session(pytester: pytest.Pytester) -> pytest.RunResult:
    """A new session on the cluster: its first use of the cluster sweeps what ended sessions left."""
    here = pytester.path / f"next-{secrets.token_hex(3)}"
    here.mkdir()
    (here / "test_next.py").write_text("def test_next(stateful_namespace):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", str(here))
    result.assert_outcomes(passed=1)
    return result


def _assert_all_gone(core: client.CoreV1Api, toks: list[str]) -> dict[str, str]:
    """Every namespace of those runs gone, and no PersistentVolume of theirs left; the volumes'
    phases seen meanwhile (what reclaiming did)."""
    seen: dict[str, str] = {}

    def gone() -> bool:
        left = {n: p for t in toks for n, p in _namespaces(core, t).items()}
        volumes = _volumes(core, toks)
        seen.update(volumes)
        return not left and not volumes

    _wait(f"namespaces or volumes of {toks} are left", gone, GONE_SECONDS)
    return seen


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_cleans_up_after_itself(
    pytester: pytest.Pytester, stateful_cluster: ClusterHandle, sig: signal.Signals
) -> None:
    rng = random.Random(f"{SEED}-{sig.name}")
    print(f"seed {SEED}")
    core = stateful_cluster.core
    trials = [_trial(core, pytester.path, sig, rng) for _ in range(TRIALS)]
    for trial in trials:
        print(f"{sig.name} after {trial.delay} s: exit {trial.returncode} in {trial.seconds} s, {trial.namespaces}")
    # A run that passed must have ended before the signal came, not carried on through it.
    ignored = [(t.delay, t.seconds) for t in trials if t.returncode == 0 and t.seconds > t.delay + 2]
    assert not ignored, f"{sig.name} did not stop pytest: (delay, seconds to exit) {ignored}"
    leaked = {t.tok: t.leaked for t in trials if t.leaked}
    assert not leaked, f"the interrupted runs left namespaces behind (seed {SEED}): {leaked}"
    result = _next_session(pytester)
    seen = _assert_all_gone(core, [t.tok for t in trials])
    _log(
        {
            "after": sig.name,
            "swept": [x for x in result.outlines if x.startswith("[stateful] deleted")],
            "volumes": seen,
        }
    )


def test_a_killed_run_is_swept_by_the_next_session(pytester: pytest.Pytester, stateful_cluster: ClusterHandle) -> None:
    rng = random.Random(f"{SEED}-SIGKILL")
    print(f"seed {SEED}")
    core = stateful_cluster.core
    trials = [_trial(core, pytester.path, signal.SIGKILL, rng) for _ in range(max(2, TRIALS - 1))]
    leaked = [n for t in trials for n in t.leaked]
    print(f"SIGKILL left {len(leaked)} namespaces: {leaked}")
    result = _next_session(pytester)
    # Every session sweeps on its first use of the cluster: a later trial's run may have swept an
    # earlier one's leftovers already (and other runs share this cluster, so may they).
    outputs = [*(t.output for t in trials), result.stdout.str()]
    lines = [x for out in outputs for x in out.splitlines() if x.startswith("[stateful] deleted ")]
    assert all("left by sessions that ended: " in x for x in lines), lines
    swept = [n for n in leaked if any(n in x for x in lines)]
    active = [n for t in trials for n, phase in _namespaces(core, t.tok).items() if phase == "Active"]
    assert not active, f"the next session left {active} of killed runs; the sweeps said: {lines}"
    print(f"the runs after them swept {len(swept)} of {len(leaked)}: {lines}")
    seen = _assert_all_gone(core, [t.tok for t in trials])
    print(f"volumes of the killed runs seen while they were reclaimed: {seen}")
    _log({"after": "SIGKILL", "leaked": leaked, "swept": swept, "volumes": seen})


@pytest.mark.parametrize("when", ["before", "after"])
def test_an_interrupt_inside_the_teardown_delete_still_deletes(
    pytester: pytest.Pytester, stateful_cluster: ClusterHandle, when: str
) -> None:
    """The race the random trials rarely hit: the signal arrives inside teardown's delete call,
    before the request went out or after the API server accepted it."""
    names = pytester.path / "names.txt"
    pytester.makeconftest(
        f"""
        import os, signal
        from kubernetes import client

        real = client.CoreV1Api.delete_namespace
        calls = []

        def delete_namespace(self, name, *args, **kwargs):
            calls.append(name)
            if len(calls) == 1 and "{when}" == "before":
                os.kill(os.getpid(), signal.SIGTERM)
            result = real(self, name, *args, **kwargs)
            if len(calls) == 1 and "{when}" == "after":
                os.kill(os.getpid(), signal.SIGTERM)
            return result

        client.CoreV1Api.delete_namespace = delete_namespace
        """
    )
    pytester.makepyfile(
        f"""
        def test_one(stateful_namespace):
            open("{names}", "a").write(stateful_namespace + "\\n")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert "SIGTERM received: stopping as on Ctrl-C" in result.stdout.str()
    (name,) = names.read_text().split()
    phase = _namespaces(stateful_cluster.core, name).get(name, "Gone")
    assert phase in ("Terminating", "Gone"), f"{name} is {phase} after an interrupt {when} its delete"


# -- `pytest-stateful clean`, on owners made up for the purpose ----------------------------------


def _owned(core: client.CoreV1Api, tok: str, what: str, owner: Owner, kept: bool = False) -> str:
    name = f"stateful-clean-{what}-{tok}-{secrets.token_hex(3)}"
    notes = owner.annotations()
    if kept:
        notes[KEPT_ANNOTATION] = "true"
    body = {"metadata": {"name": name, "labels": owner.labels(), "annotations": notes}}
    core.create_namespace(body)
    return name


def _clean(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_stateful.cli", "clean", *args], capture_output=True, text=True, timeout=120
    )


def test_clean_deletes_only_what_ended_sessions_left(stateful_cluster: ClusterHandle) -> None:
    core = stateful_cluster.core
    tok = secrets.token_hex(3)
    me = this_process()
    # A pid that has certainly ended: a child that exited and was reaped.
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = Owner("deadbeef0000", int(child.stdout), me.host, me.process.rpartition("|")[0] + "|1", time.time())
    far_old = Owner("farfar000000", 1, "ci-elsewhere", "", time.time() - 2 * 3600)
    far_young = Owner("farfar000001", 1, "ci-elsewhere", "", time.time() - 60)
    names = {
        "dead": _owned(core, tok, "dead", dead),
        "far-old": _owned(core, tok, "far-old", far_old),
        "far-young": _owned(core, tok, "far-young", far_young),
        "live": _owned(core, tok, "live", me),
        "kept": _owned(core, tok, "kept", dead, kept=True),
    }
    unowned = f"stateful-clean-unowned-{tok}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": unowned}})
    try:
        kubeconfig = ["--kubeconfig", str(stateful_cluster.kubeconfig), "--context", stateful_cluster.context]
        dry = _clean("--dry-run", *kubeconfig)
        assert dry.returncode == 0, dry.stderr
        assert names["dead"] in dry.stdout and names["far-old"] in dry.stdout
        assert _namespaces(core, tok)[names["dead"]] == "Active"

        done = _clean(*kubeconfig)
        assert done.returncode == 0, done.stderr
        first = done.stdout.splitlines()[0]
        assert first.startswith("deleted ") and "namespaces left by sessions that ended:" in first
        assert f"{names['dead']} (pid {dead.pid} is no longer running)" in first
        assert f"{names['far-old']} (created on ci-elsewhere 2 h ago)" in first
        assert "may still run (--all deletes them)" in done.stdout and names["live"] in done.stdout
        assert "kept for debugging (--kept deletes them)" in done.stdout and names["kept"] in done.stdout
        phases = _namespaces(core, tok)
        assert phases[names["dead"]] == phases[names["far-old"]] == "Terminating"
        for untouched in ("far-young", "live", "kept"):
            assert phases[names[untouched]] == "Active", untouched
        assert phases[unowned] == "Active"  # no owned label: never looked at

    finally:
        for name in [*names.values(), unowned]:
            try:
                core.delete_namespace(name)
            except client.ApiException as exc:
                if exc.status not in (404, 409):
                    raise


def test_clean_needs_both_kubeconfig_and_context(stateful_cluster: ClusterHandle) -> None:
    result = _clean("--kubeconfig", str(stateful_cluster.kubeconfig))
    assert result.returncode == 2
    assert "--kubeconfig and --context go together" in result.stderr


def test_a_released_volume_of_a_vanished_namespace_is_deleted(stateful_cluster: ClusterHandle) -> None:
    """A volume kept (reclaim policy Retain) after its claim and namespace went: Released for good."""
    core = stateful_cluster.core
    tok = secrets.token_hex(3)
    gone_ns, other_ns = f"stateful-gone-{tok}", f"team-{tok}"
    created = []
    for namespace in (gone_ns, other_ns):
        name = f"pv-{namespace}"
        # A plain dict, not client models: in-process pytester runs of earlier tests can leave two copies
        # of the model classes in the process, and the client's validation then refuses a mix of them.
        core.create_persistent_volume(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name},
                "spec": {
                    "capacity": {"storage": "1Mi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": f"/tmp/pytest-stateful-test-{tok}"},
                    "claimRef": {
                        "kind": "PersistentVolumeClaim",
                        "namespace": namespace,
                        "name": "www-web-0",
                        "uid": f"{tok}-uid",
                    },
                },
            }
        )
        created.append(name)
    try:
        # The PV controller finds the claim gone and releases the volume; Retain keeps it so.
        _wait(
            "the volumes are not Released",
            lambda: all(core.read_persistent_volume(n).status.phase == "Released" for n in created),
            90,
        )
        result = _clean("--dry-run")
        assert f"pv-{gone_ns}" in result.stdout and f"pv-{other_ns}" not in result.stdout
        result = _clean()
        assert result.returncode == 0, result.stderr
        assert "Released PersistentVolume" in result.stdout and f"pv-{gone_ns}" in result.stdout
        _wait("the plugin's released volume is left", lambda: f"pv-{gone_ns}" not in _volumes(core, [tok]), 30)
        assert core.read_persistent_volume(f"pv-{other_ns}").status.phase == "Released"
    finally:
        for name in created:
            try:
                core.delete_persistent_volume(name)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise


def test_the_namespace_carries_its_owner(pytester: pytest.Pytester, stateful_cluster: ClusterHandle) -> None:
    out = pytester.path / "meta.json"
    pytester.makepyfile(
        f"""
        import json, os

        def test_meta(stateful_namespace, stateful_cluster):
            ns = stateful_cluster.core.read_namespace(stateful_namespace)
            open("{out}", "w").write(json.dumps({{"pid": os.getpid(), "labels": ns.metadata.labels,
                                                 "annotations": ns.metadata.annotations}}))
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    meta = json.loads(out.read_text())
    assert meta["labels"][OWNED_LABEL] == "true"
    assert meta["labels"]["pytest-stateful.io/session"]
    assert meta["annotations"][PID_ANNOTATION] == str(meta["pid"])
    assert meta["annotations"][HOST_ANNOTATION] == this_process().host
    assert meta["annotations"]["pytest-stateful.io/created"].endswith("Z")
