"""deploy/docker-compose.yml: valid by the Compose Specification's JSON schema (vendored: deploy/schemas/), every
process of the platform with its broker and a replica-set MongoDB, started in order of health."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import jsonschema
import pytest

from deploy.processes import PROCESSES, SERVICE_CLASSES
from deploy.tests.manifests import DEPLOY, ROOT, compose, interpolated
from gateway.endpoints import ROUTES

SCHEMA = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
SERVICES = compose()["services"]


def schema_errors(document: dict) -> list[str]:
    validator_class = jsonschema.validators.validator_for(SCHEMA)
    validator = validator_class(SCHEMA, format_checker=validator_class.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=lambda error: list(map(str, error.absolute_path)))
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in errors]


def test_the_compose_file_is_valid_by_the_compose_specification_schema():
    assert not schema_errors(compose()), "\n".join(schema_errors(compose()))


def test_the_schema_refuses_what_compose_would_refuse():
    broken = compose()
    broken["services"]["gateway"]["healthcheck"] = {"test": ["CMD", "true"], "intervall": "5s"}
    broken["services"]["billing"]["depends_on"]["mongo"] = {"condition": "service_ready"}
    errors = schema_errors(broken)
    assert any(error.startswith("services/gateway/healthcheck:") and "intervall" in error for error in errors)
    assert any(error.startswith("services/billing/depends_on:") for error in errors)


def test_the_compose_file_names_every_process_the_broker_and_the_store():
    assert set(PROCESSES) | {"rabbitmq", "mongo"} <= set(SERVICES)


def test_rabbitmq_has_its_management_plugin_and_mongodb_7_is_a_replica_set_the_file_initiates():
    assert SERVICES["rabbitmq"]["image"].endswith("-management")
    mongo = SERVICES["mongo"]
    assert mongo["image"].startswith("mongo:7.")
    assert "--replSet" in mongo["command"]
    assert "rs.initiate" in " ".join(mongo["healthcheck"]["test"])
    for process in PROCESSES:
        uri = SERVICES[process]["environment"]["MONGO_URI"]
        assert "replicaSet=rs0" in uri and "w=majority" in uri, f"{process}: {uri}"


@pytest.mark.parametrize("process", PROCESSES)
def test_each_process_starts_once_what_it_needs_is_healthy(process):
    depends_on = SERVICES[process]["depends_on"]
    needs = {"rabbitmq", "mongo"} | (set(SERVICE_CLASSES) if process == "gateway" else set())
    assert set(depends_on) == needs
    for name in needs:
        assert depends_on[name]["condition"] == "service_healthy", f"{process} waits for {name} to start only"
        assert "healthcheck" in SERVICES[name] or name in PROCESSES, f"{name} has no health check to wait for"


@pytest.mark.parametrize("process", PROCESSES)
def test_each_process_is_built_from_its_image_target_and_stops_gracefully(process):
    build = SERVICES[process]["build"]
    assert (ROOT / "deploy" / build["context"] / build["dockerfile"]).is_file()
    assert build["target"] == process
    assert SERVICES[process]["stop_grace_period"].endswith("s")


@pytest.mark.parametrize("service", sorted(SERVICE_CLASSES))
def test_the_clinic_configuration_of_each_service_is_mounted_from_the_repository(service):
    mounts = [volume.split(":") for volume in SERVICES[service]["volumes"]]
    assert [f"../services/{service}/config", f"/app/services/{service}/config", "ro"] in mounts
    assert (ROOT / "services" / service / "config").is_dir()


def test_data_lives_in_named_volumes():
    named = set(compose()["volumes"])
    for name in ("rabbitmq", "mongo"):
        sources = {volume.split(":")[0] for volume in SERVICES[name]["volumes"]}
        assert sources and sources <= named, f"{name} keeps data outside named volumes: {sources - named}"


def option(argv: list[str], name: str) -> str:
    assert name in argv, f"{name} is not given: {argv}"
    return argv[argv.index(name) + 1]


def test_the_stripe_double_sends_its_webhooks_to_the_gateway_signed_with_the_gateways_secret():
    """Billing's payments go to the double; the double's events must reach the gateway's Stripe webhook route and
    pass its signature check, or a deposit paid with 3-D Secure never reaches billing."""
    double, gateway = SERVICES["stripe-double"], SERVICES["gateway"]
    assert double["command"][:3] == ["python", "-m", "services.billing.stripe_double"]
    assert interpolated(SERVICES["billing"]["environment"]["STRIPE_API_BASE"], {}) == "http://stripe-double:8420"
    target = urlsplit(option(double["command"], "--webhook-url"))
    port = gateway["environment"]["GATEWAY_ADDRESS"].rsplit(":", 1)[1]
    webhook = next(route for route in ROUTES if route.operation_id == "stripeWebhook")
    assert (target.scheme, target.netloc, target.path) == ("http", f"gateway:{port}", webhook.path)
    secret = option(double["command"], "--webhook-secret")
    assert secret == gateway["environment"]["STRIPE_WEBHOOK_SECRET"], "the double signs with another secret"
    assert interpolated(secret, {}).startswith("whsec_"), "with no deploy/.env value, the double's default is used"
