"""What the API server serves, from its discovery documents: which kinds each apiVersion has, and
whether each is namespaced. Asked once per apiVersion and cached."""

from __future__ import annotations

import json
from typing import Any

from pytest_stateful.cluster.api import CLIENT_FAILURES
from pytest_stateful.errors import ManifestError, api_error


class Discovery:
    """Which kinds of which apiVersion the cluster serves, and whether each is namespaced (cached)."""

    def __init__(self, api: Any) -> None:
        self.api = api
        # apiVersion -> kind -> (namespaced, resource name), or None when the apiVersion is not served.
        self._served: dict[str, dict[str, tuple[bool, str]] | None] = {}

    def namespaced(self, api_version: str, kind: str) -> bool | None:
        """True/False from discovery; None when the cluster does not serve that kind."""
        served = self._kind(api_version, kind)
        return None if served is None else served[0]

    def kinds(self, api_version: str) -> list[str]:
        """The kinds the cluster serves in `api_version` (none when it does not serve it)."""
        if api_version not in self._served:
            self._served[api_version] = self._resources(api_version)
        return sorted(self._served[api_version] or {})

    def path(self, api_version: str, kind: str, namespace: str, name: str) -> str | None:
        """The URL path of one object (namespace "" for a cluster-scoped one), or None when the
        cluster does not serve that kind."""
        served = self._kind(api_version, kind)
        if served is None:
            return None
        root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if not namespace:
            return f"{root}/{served[1]}/{name}"
        return f"{root}/namespaces/{namespace}/{served[1]}/{name}"

    def _kind(self, api_version: str, kind: str) -> tuple[bool, str] | None:
        if api_version not in self._served:
            self._served[api_version] = self._resources(api_version)
        served = self._served[api_version]
        return None if served is None else served.get(kind)

    def _resources(self, api_version: str) -> dict[str, tuple[bool, str]] | None:
        path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        try:
            method, url, headers, body, _ = self.api.param_serialize("GET", path, auth_settings=["BearerToken"])
            resp = self.api.call_api(method, url, header_params=headers, body=body, _request_timeout=(5.0, 30.0))
            status = int(getattr(resp, "status", 200) or 200)
            if status == 404:
                return None
            if status >= 300:
                raise ManifestError(f"discovery of {api_version} answered {status}")
            resp.read()
            listed = json.loads(resp.data)
        except CLIENT_FAILURES as exc:
            if getattr(exc, "status", 0) == 404:
                return None
            raise api_error(exc, f"ask the API server which kinds {api_version} has") from exc
        return {
            r["kind"]: (bool(r.get("namespaced")), str(r.get("name", "")))
            for r in listed.get("resources") or []
            if "/" not in r.get("name", "")  # subresources (pods/log) are not kinds of their own
        }
