"""Every exception pytest-stateful raises, in one family.

Callers catch `StatefulError` (or one of its branches), never a tuple kept by
hand; the plugin shows a `StatefulError` as the sentence it carries, without a
Python traceback, unless `--stateful-traceback` asks for one.

Kubernetes API failures are mapped once, at the boundary (`api_error`), to a
typed `ApiError`: code above it catches `NotFound` or `Conflict`, never parses a
response body or compares status numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class StatefulError(Exception):
    """The base of every error of the package: one sentence a person can act on."""


# -- input: specs, manifests, charts, options ------------------------------------------------------


class UsageError(StatefulError, ValueError):
    """A value given by the user (an option, an argument, a guarantee's name) is not valid."""


class SpecError(StatefulError):
    """An invalid spec: where (file and line) and exactly what is wrong."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message


class ManifestError(StatefulError, ValueError):
    """A manifest or chart cannot be applied as given."""


# -- what a cluster can and cannot do ------------------------------------------------------------


class ClusterError(StatefulError, RuntimeError):
    """The cluster cannot be started, reached or used as asked."""


class ProviderUnavailable(ClusterError):
    """The provider cannot run on this machine; tests using it are skipped with this reason."""


class NotSupported(ClusterError):
    """A step needs a capability this cluster does not offer (e.g. holding a pod unready)."""


class BuildError(ClusterError):
    """A pinned upstream program could not be built."""


class RealNodeError(ClusterError):
    """The real node (kubelet, containerd, CNI) could not be set up or torn down."""


class ImageError(ClusterError):
    """The real node's images could not be built or imported."""


class InfrastructureError(ClusterError):
    """The cluster, not the workload, failed while a step ran: the API server unreachable or not ready,
    a watch that cannot be restored. An error of the run: no guarantee is judged over it.
    `step`/`index`: the spec step it happened in, when a spec ran."""

    def __init__(self, message: str, step: Any = None, index: int = 0) -> None:
        super().__init__(message)
        self.step, self.index = step, index


# -- steps and verdicts (assertion failures, so pytest reports them as failed, not errored) ------


class StepTimeout(StatefulError, AssertionError):
    """A step did not reach its goal in time; the message says what was last seen and why."""


class StepError(StatefulError, AssertionError):
    """A step cannot be carried out (e.g. its pod is not on a node)."""


class GuaranteeFailed(StatefulError, AssertionError):
    """A guarantee did not hold (or could not be judged); carries the verdict."""

    def __init__(self, verdict: Any) -> None:
        super().__init__(verdict.explain())
        self.verdict = verdict


# -- the Kubernetes API, mapped at the boundary ---------------------------------------------------


class ApiError(StatefulError):
    """The API server refused or failed a request. `status` is the HTTP status (0: no answer)."""

    status = 0

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status or type(self).status
        self.reason = reason


class BadRequest(ApiError):
    status = 400


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class Gone(ApiError):
    """410: a watch or list asked for a resourceVersion the server no longer has."""

    status = 410


class Invalid(ApiError):
    status = 422


class TooManyRequests(ApiError):
    status = 429


class ServerError(ApiError):
    """5xx, or no answer at all (connection refused while the API server restarts)."""

    status = 500


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def api_error(exc: BaseException, doing: str) -> ApiError:
    """Map a failure of the Kubernetes client to a typed ApiError whose message says what was being done.

    `doing` reads as a phrase: "delete pod web-0". The server's own message is kept.
    """
    status = int(getattr(exc, "status", 0) or 0)
    body = getattr(exc, "body", None)
    reason = str(getattr(exc, "reason", "") or "")
    detail = ""
    if body:
        try:
            parsed = json.loads(body)
            detail = str(parsed.get("message") or "")
            reason = str(parsed.get("reason") or reason)
        except (TypeError, ValueError, AttributeError):
            detail = str(body)[:300]
    if status == 0:
        detail = _no_answer(exc)
    cls = _BY_STATUS.get(status, ServerError if status >= 500 or status == 0 else ApiError)
    said = detail or f"{status} {reason}".strip()
    return cls(f"{doing}: {said}", status, reason)


def _no_answer(exc: BaseException) -> str:
    """A failure without an HTTP answer, in a few words: where, and refused / timed out / reset."""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    where = ""
    # MaxRetryError names the pool; a bare connection error its connection (urllib3 2 deprecates .pool there).
    peer = exc.__dict__.get("pool") or exc.__dict__.get("conn") or getattr(reason, "__dict__", {}).get("conn")
    if peer is not None:
        where = f" at {getattr(peer, 'host', '')}:{getattr(peer, 'port', '')}"
    for needle, said in (
        ("Connection refused", "connection refused"),
        ("timed out", "timed out"),
        ("Connection reset", "connection reset"),
        ("Connection aborted", "connection aborted"),
        ("RemoteDisconnected", "connection closed without an answer"),
        ("ProtocolError", "connection broken"),
    ):
        if needle in text or needle in type(reason).__name__:
            return f"no answer from the API server{where}: {said}"
    return f"no answer from the API server{where}: {type(exc).__name__}: {_first_line(text)}"


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]


# -- a spec's run ------------------------------------------------------------------------------------


class StepFailed(StatefulError, AssertionError):
    """A step of a spec could not be carried out (or did not settle in time); `step` knows its YAML line."""

    def __init__(self, step: Any, index: int, reason: str) -> None:
        super().__init__(f"step {index + 1} `{step.describe()}` failed: {reason}")
        self.step, self.index, self.reason = step, index, reason


class ExpectFailed(StatefulError, AssertionError):
    """One or more expected guarantees did not hold; `verdicts` has every judged one."""

    def __init__(self, verdicts: dict[str, Any]) -> None:
        failed = [v for v in verdicts.values() if not v.passed]
        super().__init__("; ".join(f"{v.guarantee}: {v.summary}" for v in failed))
        self.verdicts = verdicts
        self.failed = failed


def status_error(status: Any, doing: str) -> ApiError:
    """An API Status object (as sent inside a watch stream with type ERROR) as a typed ApiError."""
    code = int(status.get("code") or 0) if isinstance(status, dict) else 0
    message = str(status.get("message") or "") if isinstance(status, dict) else str(status)
    reason = str(status.get("reason") or "") if isinstance(status, dict) else ""
    cls = _BY_STATUS.get(code, ServerError if code >= 500 or code == 0 else ApiError)
    return cls(f"{doing}: {message or reason or code}", code, reason)
