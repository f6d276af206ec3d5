"""``raft-trio leave``: the preStop hook of a node pod in a StatefulSet.

Kubernetes runs a pod's preStop hook before every stop, and a stop is one
of two things that the pod cannot tell apart by itself:

- a **restart** (rolling update, eviction, node drain, ``kubectl delete
  pod``): the pod comes back with the same name and volume, so it must stay
  a member. Leaving would cost the cluster a voter's log, and a removed
  member is never added back by itself (discovery refuses a node that holds
  a membership of its own);
- a **scale-down**: the pod's ordinal is no longer below the StatefulSet's
  ``spec.replicas``, and it will not come back. It must leave, or it stays
  a voter that counts against the quorum forever (with 5 voters and 2 gone
  for good, one more failure stops the cluster).

So the hook asks the Kubernetes API for the StatefulSet's ``spec.replicas``
(with the pod's service-account token: a Role allowing ``get`` on
statefulsets) and compares the pod's ordinal with it:

1. if this node leads, it hands leadership to its most caught-up follower
   first (§3.10), in both cases: the cluster has a new leader one round
   trip later instead of an election timeout after the pod stops;
2. on a scale-down only, it asks the leader to remove this member, and
   retries while another membership change is under way (with
   ``podManagementPolicy: Parallel`` the departing pods stop together, and
   Raft changes one member at a time);
3. it lingers ``--linger`` seconds, so that the endpoints controller takes
   the pod out of the client Service before SIGTERM.

When in doubt (API unreachable, no token, the StatefulSet gone as with
``kubectl delete statefulset``, an answer without ``spec.replicas``) it
treats the stop as a restart: a member wrongly kept can be removed by hand
(``raft-trio members remove``), a member wrongly removed has lost its seat.

Membership changes and transfers carry ``Authorization: Bearer <token>``
when ``RAFT_ADMIN_TOKEN`` (or ``RAFT_ADMIN_TOKEN_FILE``) is set, the nodes'
admin token, on every request of a redirect chain (the client's rule);
the service-account token goes only to the Kubernetes API.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx

from .. import schema
from ..client import ApiError, BadRequest, Client, ClientError, MembershipConflict, Unauthorized
from ..security import Security

SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: A StatefulSet pod is named ``<statefulset>-<ordinal>``.
POD_NAME = re.compile(r"^(?P<set>.+)-(?P<ordinal>0|[1-9][0-9]*)$")
RETRY_PAUSE_S = 0.2


class LeaveError(Exception):
    """Something the hook could not do; one line for the pod's events."""


@dataclasses.dataclass(frozen=True)
class Pod:
    name: str
    statefulset: str
    ordinal: int


def parse_pod(name: str, statefulset: str | None = None) -> Pod:
    """The StatefulSet and ordinal of a pod name such as ``node-3``."""
    match = POD_NAME.match(name)
    if match is None:
        raise LeaveError(f"pod name {name!r} does not end in -<ordinal>: not a StatefulSet pod")
    owner = statefulset or match["set"]
    if statefulset is not None and match["set"] != statefulset:
        raise LeaveError(f"pod {name!r} is not a pod of the StatefulSet {statefulset!r}")
    return Pod(name, owner, int(match["ordinal"]))


def desired_replicas(
    api_url: str, serviceaccount: Path, namespace: str | None, pod: Pod, timeout: float = 5.0
) -> int:
    """``spec.replicas`` of the pod's StatefulSet; LeaveError if it cannot
    be known for certain."""
    try:
        token = (serviceaccount / "token").read_text().strip()
    except OSError as error:
        raise LeaveError(f"no service-account token: {error}") from None
    if namespace is None:
        try:
            namespace = (serviceaccount / "namespace").read_text().strip()
        except OSError as error:
            raise LeaveError(f"no namespace given and none in the service account: {error}") from None
    ca = serviceaccount / "ca.crt"
    verify: str | bool = str(ca) if ca.exists() else True
    url = (
        f"{api_url.rstrip('/')}/apis/apps/v1/namespaces/{quote(namespace, safe='')}"
        f"/statefulsets/{quote(pod.statefulset, safe='')}"
    )
    try:
        with httpx.Client(timeout=timeout, verify=verify, trust_env=False) as client:
            response = client.get(url, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as error:
        raise LeaveError(f"the Kubernetes API did not answer: {type(error).__name__}: {error}") from None
    if response.status_code != 200:
        raise LeaveError(
            f"the Kubernetes API answered {response.status_code} for {url}: {response.text[:200]}"
        )
    try:
        replicas = response.json()["spec"]["replicas"]
    except (ValueError, KeyError, TypeError):
        raise LeaveError(f"no spec.replicas in the StatefulSet {pod.statefulset}") from None
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise LeaveError(f"spec.replicas of {pod.statefulset} is not a count: {replicas!r}")
    return replicas


class NodeClient:
    """Talks to the local node (and, through its redirects, the leader)."""

    def __init__(self, url: str, security: Security, timeout: float = 5.0, api_prefix: str = "/api") -> None:
        self.client = Client([url], timeout=timeout, api_prefix=api_prefix, security=security)

    def close(self) -> None:
        self.client.close()

    def status(self, base: str | None = None) -> schema.Status:
        return (self.client if base is None else self.client.at(base)).status()

    def hand_over(self, to: str | None, deadline: float) -> str | None:
        """If the local node leads, transfer leadership (to ``to``, or the
        most caught-up voter) until another node leads; the new leader's id,
        or None if the local node did not lead."""
        attempted = False
        while True:
            try:
                status = self.status()
                if status.role != "leader":
                    if not attempted:
                        return None
                    return status.leader_id or "another node"
                attempted = True
                self.client.transfer_leadership(to)
            except Unauthorized as refused:
                raise LeaveError(f"the leadership transfer was refused: {refused.status}") from None
            except BadRequest:
                to = None  # the chosen target cannot take it: let the leader choose
            except ClientError:
                pass
            if time.monotonic() >= deadline:
                raise LeaveError("leadership did not move away before the deadline")
            time.sleep(RETRY_PAUSE_S)

    def best_successor(self, staying: set[str] | None) -> str | None:
        """Among the voters in ``staying`` (all others if None), the one
        with the longest log, asked directly; None to let the leader pick."""
        if staying is None:
            return None
        try:
            members = self.status().members
        except ClientError:
            return None
        best: tuple[int, str] | None = None
        for member in members:
            if member.id not in staying or not member.voter:
                continue
            try:
                last = self.status(member.url).last_log_index
            except ClientError:
                continue
            if best is None or last > best[0]:
                best = (last, member.id)
        return best[1] if best is not None else None

    def leave(self, node_id: str, deadline: float) -> int:
        """Remove ``node_id`` through the leader; the index of the removal
        (0 if the leader's configuration no longer had it)."""
        last = "nothing tried"
        while True:
            try:
                leader_url = self.status().leader_url
                if leader_url and node_id not in {m.id for m in self.status(leader_url).members}:
                    return 0
                return self.client.remove_member(node_id).index
            except Unauthorized as refused:
                raise LeaveError(f"the removal was refused: {refused.status} {refused.message}") from None
            except MembershipConflict as conflict:
                if conflict.code == schema.Code.NOT_MEMBER:
                    return 0
                last = f"{conflict.status} {conflict.message}"  # another change is under way
            except ApiError as error:
                last = f"{error.status} {error.message}"
            except ClientError as error:
                last = str(error)
            if time.monotonic() >= deadline:
                raise LeaveError(f"{node_id} was not removed before the deadline; last answer: {last}")
            time.sleep(RETRY_PAUSE_S)


def say(line: str) -> None:
    print(f"raft-trio leave: {line}", file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class LeaveSettings:
    """What the hook needs (read from flags and variables by the CLI)."""

    #: The local node (its redirects lead to the leader).
    node_url: str
    #: ``<statefulset>-<ordinal>``.
    pod_name: str
    #: This node's member id (None: the pod name).
    node_id: str | None = None
    #: None: the pod name without its ordinal.
    statefulset: str | None = None
    #: None: the service account's.
    namespace: str | None = None
    #: The Kubernetes API server (None: none, the stop counts as a restart).
    api_url: str | None = None
    serviceaccount: Path = Path(SERVICEACCOUNT_DIR)
    #: Give up after this many seconds.
    timeout: float = 20.0
    #: Then wait this many seconds (the endpoints update).
    linger: float = 0.0
    api_prefix: str = "/api"
    security: Security = dataclasses.field(default_factory=Security)


def run_leave(settings: LeaveSettings) -> int:
    """The hook; exit status 0 when it did what the stop called for."""
    deadline = time.monotonic() + settings.timeout
    pod = parse_pod(settings.pod_name, settings.statefulset)
    member = settings.node_id or pod.name
    api_url = settings.api_url
    departing = False
    replicas = 0
    if api_url is None:
        say("no Kubernetes API (KUBERNETES_SERVICE_HOST unset, no --kube-api): treating this as a restart")
    else:
        try:
            replicas = desired_replicas(api_url, settings.serviceaccount, settings.namespace, pod)
        except LeaveError as error:
            say(f"{error}; treating this as a restart (the member stays)")
        else:
            departing = pod.ordinal >= replicas
            say(
                f"{pod.name} is ordinal {pod.ordinal} of {pod.statefulset} with spec.replicas {replicas}: "
                + ("a scale-down, leaving the cluster" if departing else "a restart, staying a member")
            )
    failed = False
    client = NodeClient(settings.node_url, settings.security, api_prefix=settings.api_prefix)
    try:
        try:
            # On a scale-down, hand over to a pod that stays (ordinal below
            # replicas), not to another one that is leaving too.
            staying = _staying_members(client, pod, replicas) if departing else None
            new_leader = client.hand_over(client.best_successor(staying), deadline)
            if new_leader is not None:
                say(f"handed leadership to {new_leader}")
        except LeaveError as error:
            say(str(error))
            failed = True
        if departing:
            try:
                index = client.leave(member, deadline)
                say(f"removed {member} from the cluster" + (f" at index {index}" if index else " (already)"))
            except LeaveError as error:
                say(str(error))
                failed = True
    finally:
        client.close()
    if settings.linger > 0:
        time.sleep(settings.linger)
    return 1 if failed else 0


def _staying_members(client: NodeClient, pod: Pod, replicas: int) -> set[str] | None:
    """Ids of the members that are pods of the same StatefulSet with an
    ordinal below ``replicas`` (None if the membership cannot be read)."""
    try:
        members = client.status().members
    except ClientError:
        return None
    staying = set()
    for member in members:
        match = POD_NAME.match(member.id)
        if match is not None and match["set"] == pod.statefulset and int(match["ordinal"]) < replicas:
            staying.add(member.id)
    return staying or None
