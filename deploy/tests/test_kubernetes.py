"""deploy/k8s: each overlay, rendered by Kustomize, is valid by the Kubernetes schema (offline, kubernetes-validate)
and deploys every process the way the platform needs: probes, resources, a graceful stop, autoscaling, a disruption
budget, the gateway alone reachable from outside, a three-node RabbitMQ and a three-member MongoDB replica set.

The custom resources (RabbitmqCluster, MongoDBCommunity) are not in the Kubernetes schema, and their operators' CRD
schemas are not vendored here: they are checked only for what the platform relies on (see the README)."""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import pytest

from deploy.processes import PROCESSES, SERVICE_CLASSES
from deploy.tests.manifests import OVERLAYS, ROOT, container, example_secrets, find, one, rendered
from gateway.endpoints import ROUTES

#: The oldest and the newest Kubernetes versions the manifests are validated against.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
CUSTOM_RESOURCES = {("rabbitmq.com/v1beta1", "RabbitmqCluster"),
                    ("mongodbcommunity.mongodb.com/v1", "MongoDBCommunity")}


def validation_errors(documents, version: str) -> list[str]:
    errors = []
    for document in documents:
        if (document["apiVersion"], document["kind"]) in CUSTOM_RESOURCES:
            continue
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(map(str, error.path))
            errors.append(f"{document['kind']} {document['metadata']['name']}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(f"{document['kind']} {document['metadata']['name']}: {error}")
    return errors


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_of_each_overlay_is_valid_by_the_kubernetes_schema(overlay, version):
    errors = validation_errors(rendered(overlay), version)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_example_secrets_are_valid_by_the_kubernetes_schema(version):
    assert not validation_errors(example_secrets(), version)


def test_an_invalid_manifest_is_refused():
    """The validation bites: a misspelt field and a wrong type are both reported."""
    deployment = one(rendered(OVERLAYS[0]), "Deployment", "intake")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2, "revisionHistoryLimit": "five"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_process_has_probes_resources_a_graceful_stop_autoscaling_and_a_disruption_budget(overlay):
    documents = rendered(overlay)
    for process in PROCESSES:
        deployment = one(documents, "Deployment", process)
        pod = deployment["spec"]["template"]["spec"]
        item = container(deployment)
        assert "readinessProbe" in item and "livenessProbe" in item, process
        assert {"cpu", "memory"} <= set(item["resources"]["requests"]), process
        assert "memory" in item["resources"]["limits"], process
        assert pod["terminationGracePeriodSeconds"] >= 30, process
        assert pod["securityContext"]["runAsNonRoot"] is True, process
        assert "replicas" not in deployment["spec"], f"{process}: the HorizontalPodAutoscaler owns the count"
        labels = deployment["spec"]["selector"]["matchLabels"]
        autoscaler = one(documents, "HorizontalPodAutoscaler", process)
        assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                        "name": process}
        assert autoscaler["spec"]["minReplicas"] >= 2, f"{process}: one pod is no scale-out"
        budget = one(documents, "PodDisruptionBudget", process)
        assert budget["spec"]["selector"]["matchLabels"] == labels


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_services_probe_their_health_rpc_and_the_gateway_its_http_endpoints(overlay):
    documents = rendered(overlay)
    for service in SERVICE_CLASSES:
        item = container(one(documents, "Deployment", service))
        for probe in ("readinessProbe", "livenessProbe"):
            assert item[probe]["exec"]["command"] == ["infusion", "health", service]
    gateway = container(one(documents, "Deployment", "gateway"))
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/health"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_is_exposed_with_tls(overlay):
    documents = rendered(overlay)
    assert [service["metadata"]["name"] for service in find(documents, "Service")
            if service["spec"].get("type", "ClusterIP") != "ClusterIP"] == []
    ingresses = find(documents, "Ingress")
    assert [ingress["metadata"]["name"] for ingress in ingresses] == ["gateway"]
    spec = ingresses[0]["spec"]
    hosts = {rule["host"] for rule in spec["rules"]}
    assert hosts <= {host for tls in spec["tls"] for host in tls["hosts"]}, "a host without TLS"
    backends = {path["backend"]["service"]["name"] for rule in spec["rules"] for path in rule["http"]["paths"]}
    assert backends == {"gateway"}
    one(documents, "Service", "gateway")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_let_only_the_gateway_in(overlay):
    policies = find(rendered(overlay), "NetworkPolicy")
    deny = one(policies, "NetworkPolicy", "default-deny")
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert not deny["spec"].get("ingress") and not deny["spec"].get("egress")
    denied = deny["spec"]["podSelector"]["matchLabels"]
    for deployment in find(rendered(overlay), "Deployment"):  # every pod of ours is under the deny
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert denied.items() <= labels.items(), f"{deployment['metadata']['name']} escapes the default deny"
    from_other_namespaces = {policy["metadata"]["name"] for policy in policies for rule in policy["spec"].get(
        "ingress", []) for peer in rule.get("from", []) if "namespaceSelector" in peer}
    assert from_other_namespaces == {"gateway-ingress", "rabbitmq"}  # ingress controller; operator and metrics
    for process in SERVICE_CLASSES:  # nothing lets traffic into a service
        for policy in policies:
            selector = policy["spec"]["podSelector"]
            if policy["spec"].get("ingress") and selector.get("matchLabels", {}).get("app.kubernetes.io/name"):
                assert selector["matchLabels"]["app.kubernetes.io/name"] != process


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rabbitmq_is_a_three_node_cluster_and_mongodb_a_three_member_replica_set(overlay):
    documents = rendered(overlay)
    rabbitmq = find(documents, "RabbitmqCluster")
    assert len(rabbitmq) == 1 and rabbitmq[0]["spec"]["replicas"] == 3
    mongo = find(documents, "MongoDBCommunity")
    assert len(mongo) == 1
    spec = mongo[0]["spec"]
    assert spec["members"] == 3 and spec["type"] == "ReplicaSet" and spec["version"].startswith("7.")
    users = {user["name"]: user for user in spec["users"]}
    prefix = one(documents, "ConfigMap", "infusion-settings")["data"]["DATABASE_PREFIX"]
    for process in PROCESSES:  # each process its own user, allowed only its own database
        assert users[process]["roles"] == [{"name": "readWrite", "db": f"{prefix}{process}"}]
        deployment = one(documents, "Deployment", process)
        uri = next(variable for variable in container(deployment)["env"] if variable["name"] == "MONGO_URI")
        assert uri["valueFrom"]["secretKeyRef"]["name"] == users[process]["passwordSecretRef"]["name"]


def test_every_example_mongo_uri_is_a_replica_set_uri_with_majority_writes_as_its_own_user():
    for secret in example_secrets():
        uri = secret.get("stringData", {}).get("MONGO_URI")
        if uri is None:
            continue
        parts = urlsplit(uri)
        query = parse_qs(parts.query)
        assert query["w"] == ["majority"] and query["replicaSet"] == ["infusion-mongo"], secret["metadata"]["name"]
        assert parts.netloc.count(",") == 2, f"{secret['metadata']['name']}: name the three members"
        assert parts.username == secret["metadata"]["name"].removesuffix("-store")
        assert parts.password == secret["stringData"]["password"]


def configmap_files(documents: tuple[dict, ...], volume: dict) -> set[str] | None:
    """The paths a ConfigMap (or projected ConfigMaps) volume holds; None for other volumes."""
    if "configMap" in volume:
        sources = [volume["configMap"]]
    elif "projected" in volume and all("configMap" in source for source in volume["projected"]["sources"]):
        sources = [source["configMap"] for source in volume["projected"]["sources"]]
    else:
        return None
    mounted: set[str] = set()
    for source in sources:
        keys = set(one(documents, "ConfigMap", source["name"])["data"])
        items = source.get("items")
        assert items is None or {item["key"] for item in items} == keys, f"{source['name']}: map every key"
        mounted |= {item["path"] for item in items} if items is not None else keys
    return mounted


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_clinic_configuration_configmap_of_each_service_holds_every_file_of_its_config_folder(overlay):
    """The ConfigMaps are mounted over services/<service>/config (and any other folder of the service, such as
    notifications' templates): a file left out of them would vanish. A ConfigMap holds no folders, so a
    sub-folder's files come from a ConfigMap of their own, projected to their paths (``items``) in the same
    volume."""
    documents = rendered(overlay)
    for service in SERVICE_CLASSES:
        deployment = one(documents, "Deployment", service)
        volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
        folders: dict[str, set[str]] = {}  # a folder of the repository (as in the image's /app) -> what is mounted
        for mount in container(deployment)["volumeMounts"]:
            mounted = configmap_files(documents, volumes[mount["name"]])
            if mount["mountPath"].startswith("/app/") and mounted is not None:
                folders[mount["mountPath"].removeprefix("/app/")] = mounted
        assert f"services/{service}/config" in folders, f"{service}: mount its clinic configuration ConfigMap"
        for folder, mounted in folders.items():
            files = {str(path.relative_to(ROOT / folder)) for path in (ROOT / folder).rglob("*") if path.is_file()}
            assert mounted == files, (f"{service}, {folder}: add {sorted(files - mounted)} / remove "
                                      f"{sorted(mounted - files)} in the configMapGenerator of "
                                      f"deploy/k8s/base/kustomization.yaml (a sub-folder: a ConfigMap of its own, "
                                      f"projected with items in the Deployment's volume)")


# --- what the NetworkPolicies let through ---------------------------------------------------------------------

#: The pods the RabbitMQ Cluster Operator makes for the RabbitmqCluster (by the label the policies select on).
RABBITMQ_POD = {"app.kubernetes.io/name": "infusion-rabbitmq"}
KUBE_DNS = ({"k8s-app": "kube-dns"}, {"kubernetes.io/metadata.name": "kube-system"})
#: An API server as a cluster may have it: a private address, behind the `kubernetes` Service's 443 or on 6443.
API_SERVER = "10.0.0.1"


def selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        holds = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
                 "Exists": key in labels, "DoesNotExist": key not in labels}[operator]
        if not holds:
            return False
    return True


def peer_matches(peer: dict, labels: dict | None, namespace: dict | None, address: str | None) -> bool:
    """Whether a policy's from/to entry covers the other end: a pod (its labels; its namespace's labels, None for
    the policy's own namespace) or an address outside the pod network."""
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        return address is not None and ipaddress.ip_address(address) in ipaddress.ip_network(block["cidr"]) and not any(
            ipaddress.ip_address(address) in ipaddress.ip_network(cidr) for cidr in block.get("except", []))
    if labels is None:
        return False
    if "namespaceSelector" in peer:
        in_namespace = namespace is not None and selects(peer["namespaceSelector"], namespace)
    else:
        in_namespace = namespace is None
    return in_namespace and selects(peer.get("podSelector", {}), labels)


def port_matches(rule: dict, port: int, protocol: str) -> bool:
    return not rule.get("ports") or any(
        item.get("protocol", "TCP") == protocol and item["port"] <= port <= item.get("endPort", item["port"])
        for item in rule["ports"])


def allowed(policies: list[dict], direction: str, pod: dict, port: int, protocol: str = "TCP", *,
            peer: dict | None = None, namespace: dict | None = None, address: str | None = None) -> bool:
    """Whether the policies let ``pod`` (its labels) send (``Egress``) to, or take (``Ingress``) from, the peer on
    ``port``: as Kubernetes decides, a pod no policy of that direction selects is not isolated."""
    applying = [policy["spec"] for policy in policies if selects(policy["spec"]["podSelector"], pod)
                and direction in policy["spec"].get("policyTypes", ["Ingress"])]
    key, peers = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    return not applying or any(
        port_matches(rule, port, protocol)
        and (not rule.get(peers) or any(peer_matches(item, peer, namespace, address) for item in rule[peers]))
        for spec in applying for rule in spec.get(key, []))


def pod_labels(documents, deployment: str) -> dict:
    return one(documents, "Deployment", deployment)["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rabbitmq_nodes_reach_each_other_and_the_kubernetes_api_to_find_their_peers(overlay):
    """Peer discovery asks the API server for the other nodes; then epmd (4369), the distribution port (25672) and
    the CLI tools' range (35672-35682) between nodes; a node that cannot reach them never joins the cluster."""
    policies = find(rendered(overlay), "NetworkPolicy")
    for port in (4369, 25672, 35672, 35682):
        assert allowed(policies, "Egress", RABBITMQ_POD, port, peer=RABBITMQ_POD), f"node to node on {port}"
        assert allowed(policies, "Ingress", RABBITMQ_POD, port, peer=RABBITMQ_POD), f"node from node on {port}"
    for port in (443, 6443):
        assert allowed(policies, "Egress", RABBITMQ_POD, port, address=API_SERVER), f"to the API server on {port}"
    assert allowed(policies, "Egress", RABBITMQ_POD, 53, "UDP", peer=KUBE_DNS[0], namespace=KUBE_DNS[1])
    assert not allowed(policies, "Egress", RABBITMQ_POD, 27017, address=API_SERVER)


def test_the_policies_check_bites():
    """The evaluation above refuses what no policy allows."""
    policies = find(rendered("staging"), "NetworkPolicy")
    intake = pod_labels(rendered("staging"), "intake")
    assert not allowed(policies, "Ingress", intake, 8000, peer=pod_labels(rendered("staging"), "gateway"))
    assert allowed(policies, "Egress", intake, 5672, peer=RABBITMQ_POD)
    assert not allowed(policies, "Egress", intake, 443, address="203.0.113.9")


def test_the_staging_stripe_double_sends_its_webhooks_to_the_gateway_signed_with_the_gateways_secret():
    """The double is staging's Stripe: billing's payments go to it and its events, signed, to the gateway's
    webhook route; with another secret, or a policy in the way, a 3-D Secure deposit never reaches billing."""
    documents = rendered("staging")
    double = one(documents, "Deployment", "stripe-double")
    item = container(double)
    command = item["command"]
    assert command[:3] == ["python", "-m", "services.billing.stripe_double"]
    assert one(documents, "ConfigMap", "billing-settings")["data"]["STRIPE_API_BASE"] == "http://stripe-double:8420"

    target = urlsplit(command[command.index("--webhook-url") + 1])
    webhook = next(route for route in ROUTES if route.operation_id == "stripeWebhook")
    assert (target.scheme, target.hostname, target.path) == ("http", "gateway", webhook.path)
    service_ports = {item["port"] for item in one(documents, "Service", "gateway")["spec"]["ports"]}
    assert (target.port or 80) in service_ports, f"the gateway's Service has no port {target.port or 80}"

    secret_file = command[command.index("--webhook-secret-file") + 1]
    mount = next(mount for mount in item["volumeMounts"] if secret_file.startswith(mount["mountPath"] + "/"))
    volume = next(volume for volume in double["spec"]["template"]["spec"]["volumes"]
                  if volume["name"] == mount["name"])["secret"]
    key = next(entry["key"] for entry in volume["items"]
               if mount["mountPath"] + "/" + entry["path"] == secret_file)
    gateway_secret = next(variable for variable in container(one(documents, "Deployment", "gateway"))["env"]
                          if variable["name"] == "STRIPE_WEBHOOK_SECRET")["valueFrom"]["secretKeyRef"]
    assert (volume["secretName"], key) == (gateway_secret["name"], gateway_secret["key"]), (
        "the double signs with another secret than the one the gateway checks with")

    policies = find(documents, "NetworkPolicy")
    labels, gateway = pod_labels(documents, "stripe-double"), pod_labels(documents, "gateway")
    target_port = container(one(documents, "Deployment", "gateway"))["ports"][0]["containerPort"]
    assert allowed(policies, "Egress", labels, target_port, peer=gateway), "the double cannot reach the gateway"
    assert allowed(policies, "Ingress", gateway, target_port, peer=labels), "the gateway does not take the double's"
    assert allowed(policies, "Egress", labels, 53, "UDP", peer=KUBE_DNS[0], namespace=KUBE_DNS[1]), "no DNS"
    assert allowed(policies, "Ingress", labels, 8420, peer=pod_labels(documents, "billing"))
