"""Run a Spec on a cluster: deploy, take the steps (dispatched through the step table), judge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_stateful.checks import Verdict
from pytest_stateful.cluster.handle import ClusterHandle
from pytest_stateful.errors import (
    ClusterError,
    ExpectFailed,
    InfrastructureError,
    NotSupported,
    ServerError,
    StatefulError,
    StepFailed,
    StepTimeout,
)
from pytest_stateful.spec.loader import Spec, Step
from pytest_stateful.workload.handle import StatefulSetHandle
from pytest_stateful.workload.session import Recording


@dataclass
class SpecRun:
    spec: Spec
    handle: StatefulSetHandle | None = None
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    # (index, reason) of a step that could not settle after a bad rollout; the steps after it were skipped.
    skipped: tuple[int, str] | None = None


def run_spec(
    spec: Spec,
    cluster: ClusterHandle,
    namespace: str,
    timeout: float,
    run: SpecRun | None = None,
    progress: Callable[[str], None] | None = None,
    image: str | None = None,
) -> SpecRun:
    """Deploy into `namespace`, take every step, return the verdicts; raise StepFailed/ExpectFailed.

    `run` (if given) is filled as the spec goes, so a caller still has the handle after a failure.
    """
    run = run or SpecRun(spec)
    timeout = spec.timeout or timeout
    with Recording(cluster, namespace, timeout, progress, image) as recording:
        try:
            if spec.chart is not None:
                run.handle = recording.chart(spec.chart, spec.statefulset, timeout)
            else:
                run.handle = recording.statefulset(list(spec.manifests), spec.statefulset, timeout)
        finally:
            # Also when the initial rollout timed out: the report is most needed then.
            run.handle = run.handle or (recording.handles[-1] if recording.handles else None)
        assert run.handle is not None
        for index, step in enumerate(spec.steps):
            try:
                take_step(run.handle, step)
            except StepTimeout as exc:
                if "rollout_recovers" in spec.expect and run.handle.bad_rollouts:
                    # After a bad rollout, a step that cannot settle is what rollout_recovers judges, not an
                    # error of the run: the remaining steps are skipped, and the verdict says what was stuck.
                    run.skipped = (index, str(exc))
                    break
                raise StepFailed(step, index, str(exc)) from exc
            except (ServerError, ClusterError) as exc:
                if isinstance(exc, NotSupported):
                    raise StepFailed(step, index, str(exc)) from exc
                # The cluster failed, not the workload: an error of the run, judged no further.
                raise InfrastructureError(str(exc), step, index) from exc
            except StatefulError as exc:
                raise StepFailed(step, index, str(exc)) from exc
        if "rollout_recovers" in spec.expect and run.skipped is None:
            run.handle.await_recovery()  # while recording: the check judges what the cluster did meanwhile
    run.verdicts = {g: run.handle.judge(g) for g in spec.expect}
    if run.skipped is not None and "rollout_recovers" in run.verdicts:
        index, reason = run.skipped
        # The wait's first line; what it last saw is in the verdict itself (the pods it names).
        first_line = reason.splitlines()[0].removesuffix("; last seen:") if reason else "timed out"
        run.verdicts["rollout_recovers"].notes.append(
            f"step {index + 1} ({spec.steps[index].describe()}) could not settle ({first_line}); "
            f"{len(spec.steps) - index - 1} later step(s) skipped"
        )
    if any(not v.passed for v in run.verdicts.values()):
        raise ExpectFailed(run.verdicts)
    return run


def take_step(handle: StatefulSetHandle, step: Step) -> None:
    """Call the handle method of the step's row with the YAML value and the options it takes."""
    options: dict[str, Any] = {"settle": step.settle, "timeout": step.timeout}
    kwargs = {**step.kind.arguments(step.value), **{o: options[o] for o in step.kind.options}}
    getattr(handle, step.kind.method)(**kwargs)
