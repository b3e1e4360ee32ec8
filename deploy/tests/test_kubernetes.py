"""deploy/k8s: each overlay, rendered by Kustomize, is valid by the Kubernetes schema (offline, kubernetes-validate)
and deploys every process the way the platform needs: probes, resources, a graceful stop, autoscaling, a disruption
budget, the gateway alone reachable from outside, a three-node RabbitMQ and a three-member MongoDB replica set.

The custom resources (RabbitmqCluster, MongoDBCommunity) are not in the Kubernetes schema, and their operators' CRD
schemas are not vendored here: they are checked only for what the platform relies on (see the README)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import pytest

from deploy.processes import PROCESSES, SERVICE_CLASSES
from deploy.tests.manifests import OVERLAYS, ROOT, container, example_secrets, find, one, rendered

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


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_clinic_configuration_configmap_of_each_service_holds_every_file_of_its_config_folder(overlay):
    """The ConfigMaps are mounted over services/<service>/config: a file left out of them would vanish. A
    ConfigMap holds no folders, so a sub-folder's files come from a ConfigMap of their own, projected to their
    paths (``items``) in the same volume."""
    documents = rendered(overlay)
    for service in SERVICE_CLASSES:
        volumes = one(documents, "Deployment", service)["spec"]["template"]["spec"]["volumes"]
        volume = next(volume for volume in volumes if volume["name"] == "clinic-config")
        sources = ([source["configMap"] for source in volume["projected"]["sources"]] if "projected" in volume
                   else [volume["configMap"]])
        mounted: set[str] = set()
        for source in sources:
            keys = set(one(documents, "ConfigMap", source["name"])["data"])
            items = source.get("items")
            assert items is None or {item["key"] for item in items} == keys, f"{source['name']}: map every key"
            mounted |= {item["path"] for item in items} if items is not None else keys
        folder = ROOT / "services" / service / "config"
        files = {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}
        assert mounted == files, (f"{service}: add {sorted(files - mounted)} / remove {sorted(mounted - files)} in "
                                  f"the configMapGenerator of deploy/k8s/base/kustomization.yaml (a sub-folder: a "
                                  f"ConfigMap of its own, projected with items in the Deployment's volume)")
