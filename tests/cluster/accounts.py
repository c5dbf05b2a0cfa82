"""Locked-down accounts for the cluster tests: a ServiceAccount that may write only in one namespace
(a Role, not a ClusterRole), and a kubeconfig that authenticates as it with a short-lived token.

The local clusters run the API server with --authorization-mode=Node,RBAC, so what the Role leaves
out is refused by the API server itself: the tests see the real 403s a locked-down user sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

ACCOUNT = "stateful-runner"
ALL = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]


def rules(ephemeral: bool = True, exec_: bool = True) -> list[dict[str, Any]]:
    """What running the seed spec needs in its namespace, and nothing outside it (less what is turned off)."""
    pods = ["pods/eviction", "pods/log"] + (["pods/exec"] if exec_ else [])
    pods += ["pods/ephemeralcontainers"] if ephemeral else []
    return [
        {"apiGroups": [""], "resources": ["pods", "services", "configmaps", "secrets", "persistentvolumeclaims"],
         "verbs": ALL},
        {"apiGroups": [""], "resources": pods, "verbs": ["get", "create", "patch", "update"]},
        {"apiGroups": [""], "resources": ["events", "endpoints"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["statefulsets", "statefulsets/scale", "controllerrevisions"],
         "verbs": ALL},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["get", "list", "watch"]},
    ]  # fmt: skip


def namespaced_kubeconfig(
    admin: Path, context: str, namespace: str, out: Path, ephemeral: bool = True, exec_: bool = True
) -> Path:
    """As the admin: the namespace, a ServiceAccount, a Role and its binding there, a token; the
    kubeconfig (context "runner") that uses the token. The namespace is the test's to delete."""
    api = config.new_client_from_config(config_file=str(admin), context=context)
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_service_account(namespace, {"metadata": {"name": ACCOUNT}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": ACCOUNT}, "rules": rules(ephemeral, exec_)})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": ACCOUNT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ACCOUNT},
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}],
        },
    )
    token = core.create_namespaced_service_account_token(
        ACCOUNT, namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    admin_config = yaml.safe_load(admin.read_text())
    ctx = next(c["context"] for c in admin_config["contexts"] if c["name"] == context)
    cluster = next(c["cluster"] for c in admin_config["clusters"] if c["name"] == ctx["cluster"])
    out.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": cluster}],
                "users": [{"name": ACCOUNT, "user": {"token": token}}],
                "contexts": [
                    {"name": "runner", "context": {"cluster": "local", "user": ACCOUNT, "namespace": namespace}}
                ],
                "current-context": "runner",
            }
        )
    )
    api.close()
    return out


def delete_namespace(admin: Path, context: str, namespace: str) -> None:
    api = config.new_client_from_config(config_file=str(admin), context=context)
    try:
        client.CoreV1Api(api).delete_namespace(namespace)
    finally:
        api.close()
