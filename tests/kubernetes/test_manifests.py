"""deploy/kubernetes holds what docs/kubernetes.md promises, checked without a
cluster: every object valid against the Kubernetes 1.30 schemas shipped in the
kubernetes-validate package (offline), kustomization.yaml listing every file,
and the StatefulSet, Services, PodDisruptionBudget, monitor and ConfigMap
carrying the settings the docs describe. Commands must pass the real parsers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from raft_trio.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
#: The Kubernetes version whose schemas the manifests are validated against.
KUBERNETES_VERSION = "1.30.0"

yaml = pytest.importorskip("yaml", reason="PyYAML reads the manifests (pip install pyyaml)")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="pip install kubernetes-validate (the test extra)"
)

NODE_LABELS = {"app.kubernetes.io/name": "raft-trio", "app.kubernetes.io/component": "node"}
MONITOR_LABELS = {"app.kubernetes.io/name": "raft-trio", "app.kubernetes.io/component": "monitor"}


def manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of deploy/kubernetes by (kind, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in manifest_files():
        for doc in load_documents(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"{key} defined twice"
            found[key] = doc
    return found


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    document = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert isinstance(document, dict)
    return document


def container(pod_owner: dict[str, Any], name: str) -> dict[str, Any]:
    containers = pod_owner["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in c.get("env", [])}


def test_the_schema_version_is_shipped_in_the_package() -> None:
    assert KUBERNETES_VERSION in kubernetes_validate.utils.all_versions()


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_every_object_is_valid_against_the_kubernetes_schemas(path: Path) -> None:
    documents = load_documents(path)
    assert documents, f"{path.name} holds no object"
    for doc in documents:
        # strict: unknown fields (typos) fail too. Raises ValidationError.
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_wrong_manifest_is_rejected() -> None:
    """The validator really checks: a misspelt field and a wrong type fail."""
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"publishNotReadyAdresses": True, "ports": [{"port": 9001}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": "x"}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_and_nothing_else(kustomization: dict[str, Any]) -> None:
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert sorted(resources) == [p.name for p in manifest_files()]
    assert [i["name"] for i in kustomization["images"]] == ["raft-trio"]


def test_node_statefulset(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    sts = objects["StatefulSet", "node"]
    spec = sts["spec"]
    assert spec["replicas"] == 3
    assert spec["serviceName"] == "node-headless"
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["selector"]["matchLabels"] == NODE_LABELS
    assert spec["template"]["metadata"]["labels"] == NODE_LABELS
    # A volume per pod, mounted on /data.
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    node = container(sts, "node")
    assert {"name": "data", "mountPath": "/data"} in node["volumeMounts"]
    assert node["image"] == "raft-trio:latest"
    assert [p["containerPort"] for p in node["ports"]] == [9001]


def test_node_runs_as_the_images_unprivileged_user(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    for owner, name in (
        (objects["StatefulSet", "node"], "node"),
        (objects["Deployment", "monitor"], "monitor"),
    ):
        pod = owner["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["runAsUser"] == 10001  # the Containerfile's user raft
        c = container(owner, name)["securityContext"]
        assert c["allowPrivilegeEscalation"] is False
        assert c["capabilities"]["drop"] == ["ALL"]
    assert objects["StatefulSet", "node"]["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 10001
    assert "USER raft" in (ROOT / "Containerfile").read_text()
    assert "--uid 10001" in (ROOT / "Containerfile").read_text()


def test_every_container_has_requests_and_limits(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    for owner, name in (
        (objects["StatefulSet", "node"], "node"),
        (objects["Deployment", "monitor"], "monitor"),
    ):
        resources = container(owner, name)["resources"]
        for part in ("requests", "limits"):
            assert set(resources[part]) == {"cpu", "memory"}, (name, part)


def test_node_probes_and_prestop_hook(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    sts = objects["StatefulSet", "node"]
    node = container(sts, "node")
    assert node["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "raft"}
    # Readiness means "caught up with the leader" (/readyz).
    assert node["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "raft"}
    pre_stop = node["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[:2] == ["raft-trio", "leave"]
    args = build_parser().parse_args(pre_stop[1:])
    assert args.pod is None and args.id is None  # $POD_NAME from the container's env
    assert "POD_NAME" in env_of(node)
    # Hook, hand-over (1 s) and the node's drain (write timeout 5 s + 1 s)
    # fit in the grace period, or Kubernetes kills the node mid-way.
    grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert args.timeout + args.linger + 1 + 6 < grace
    assert args.linger >= 2  # time for the endpoints to drop the pod before SIGTERM


def test_the_prestop_hook_may_read_its_statefulset_and_nothing_more(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """The hook asks for the StatefulSet's spec.replicas with the pod's
    service account: a Role allowing get on that StatefulSet only, bound
    to the account the pods run as, whose token is mounted."""
    sts = objects["StatefulSet", "node"]
    pod = sts["spec"]["template"]["spec"]
    account = pod["serviceAccountName"]
    assert pod["automountServiceAccountToken"] is True
    assert ("ServiceAccount", account) in objects
    bindings = [o for (kind, _), o in objects.items() if kind == "RoleBinding"]
    (binding,) = [b for b in bindings if {"kind": "ServiceAccount", "name": account} in b["subjects"]]
    assert binding["roleRef"]["kind"] == "Role"
    role = objects["Role", binding["roleRef"]["name"]]
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["statefulsets"],
            "resourceNames": [sts["metadata"]["name"]],
            "verbs": ["get"],
        }
    ]
    # The admin token reaches the node and the hook (same environment) when the Secret exists.
    token = env_of(container(sts, "node"))["RAFT_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token["optional"] is True


def test_node_command_is_one_the_cli_accepts(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    node = container(objects["StatefulSet", "node"], "node")
    command = node["command"]
    assert command[:2] == ["raft-trio", "node"]
    # Kubernetes expands $(POD_NAME) from the env list before the process starts.
    args = build_parser().parse_args([a.replace("$(POD_NAME)", "node-0") for a in command[1:]])
    assert args.id == "node-0"
    assert args.listen == "0.0.0.0:9001"
    assert args.data_dir == "/data/{hostname}"
    assert args.peers is None and args.join is None  # discovery only
    env = env_of(node)
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["APP_NAME"]["value"] == "$(HEADLESS_SERVICE).$(POD_NAMESPACE).svc.$(CLUSTER_DOMAIN)"
    # Dependent variables are expanded only from variables defined earlier in the list.
    names = [item["name"] for item in node["env"]]
    for earlier in ("POD_NAME", "POD_NAMESPACE", "HEADLESS_SERVICE", "CLUSTER_DOMAIN"):
        assert names.index(earlier) < names.index("APP_NAME")


def test_monitor_command_is_one_the_parser_accepts(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    monitor = container(objects["Deployment", "monitor"], "monitor")
    assert monitor["command"][0] == "raft-monitor"
    monitor_main = pytest.importorskip("raft_monitor.__main__")
    args = monitor_main.build_parser().parse_args(monitor["command"][1:])
    assert args.listen == "0.0.0.0:8000"
    env = env_of(monitor)
    assert env["RAFT_SERVICE_NAME"]["value"] == "$(HEADLESS_SERVICE).$(POD_NAMESPACE).svc.$(CLUSTER_DOMAIN)"
    assert monitor["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_services(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    headless = objects["Service", "node-headless"]["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True
    assert headless["selector"] == NODE_LABELS
    # One port only: every SRV record of the name is a node's 9001.
    assert [(p["name"], p["port"]) for p in headless["ports"]] == [("raft", 9001)]
    client = objects["Service", "node"]["spec"]
    assert client.get("clusterIP") != "None"
    assert not client.get("publishNotReadyAddresses", False)
    assert client["selector"] == NODE_LABELS
    assert [p["port"] for p in client["ports"]] == [9001]
    monitor = objects["Service", "monitor"]["spec"]
    assert monitor["selector"] == MONITOR_LABELS
    assert [p["port"] for p in monitor["ports"]] == [8000]


def test_pod_disruption_budget_allows_one_node_down(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    pdb = objects["PodDisruptionBudget", "node"]["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"]["matchLabels"] == NODE_LABELS


def test_monitor_deployment(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    deployment = objects["Deployment", "monitor"]["spec"]
    assert deployment["replicas"] == 1
    assert deployment["selector"]["matchLabels"] == MONITOR_LABELS
    assert deployment["template"]["metadata"]["labels"] == MONITOR_LABELS


def test_configuration_lives_in_the_configmap(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    data = objects["ConfigMap", "raft-trio-config"]["data"]
    assert data["HEADLESS_SERVICE"] == "node-headless"
    assert data["NODE_PORT"] == "9001"
    assert int(data["BOOTSTRAP_EXPECT"]) == objects["StatefulSet", "node"]["spec"]["replicas"]
    # Every configMapKeyRef names this ConfigMap and a key it has (or is optional).
    for owner, name in (
        (objects["StatefulSet", "node"], "node"),
        (objects["Deployment", "monitor"], "monitor"),
    ):
        for item in container(owner, name)["env"]:
            ref = item.get("valueFrom", {}).get("configMapKeyRef")
            if ref is None:
                continue
            assert ref["name"] == "raft-trio-config"
            assert ref["key"] in data or ref.get("optional") is True, (name, ref["key"])


def test_docs_commands_name_the_manifests() -> None:
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    assert "kubectl apply -k deploy/kubernetes" in text
    assert KUBERNETES_VERSION.rsplit(".", 1)[0] in text
    assert "/readyz" in text
    assert "raft-trio leave" in text


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_builds_the_same_objects(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    """`kubectl kustomize` (offline, no cluster) renders exactly these objects."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    rendered = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out) if d}
    assert rendered == set(objects)
