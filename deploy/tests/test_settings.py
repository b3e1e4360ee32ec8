"""Every environment variable a process reads (derived from the code by deploy/env_inventory.py) is set for it in
the compose file and in each Kubernetes overlay (ConfigMap, Secret or the Deployment's env), and every variable set
there is read by that process. A failure names the variable, the process, the place and where the code reads it."""

from __future__ import annotations

import pytest
import yaml

from deploy.env_inventory import EMPTY_IS_NULL, NOT_DEPLOYED, Reads, deployed, environment_reads, inventory
from deploy.processes import PROCESSES
from deploy.tests.manifests import (
    COMPOSE_FILE,
    K8S,
    OVERLAYS,
    ROOT,
    compose,
    compose_environment,
    container,
    container_environment,
    example_secrets,
    find,
    interpolated,
    one,
    rendered,
    rendered_kustomization,
)

INVENTORY = inventory()
#: Where the compose file and the Kubernetes base deliberately differ from the code's default, and why. Everything
#: else they set is the default of the process's config.yml, so a default changed in the code is changed here too.
#: ConfigMaps of clinic configuration (mounted as files over services/<service>/config, sub-folders included).
CLINIC_CONFIG_PREFIXES = (*(f"{service}-clinic-config" for service in ("intake", "scheduling", "billing",
                                                                       "notifications")),
                          "intake-consent-texts", "notifications-templates")

DELIBERATE = {
    "AMQP_URI": "the deployment's broker",
    "MONGO_URI": "the deployment's replica set, with w=majority",
    "DATABASE_PREFIX": "not empty: nameko reads an empty variable as null",
    "GATEWAY_ADDRESS": "the gateway listens on every interface of its container",
    "JWT_ALGORITHM": "the Kubernetes base takes RS256 tokens from the identity provider",
    "JWT_PUBLIC_KEY": "the path of the mounted key file",
    "JWT_SECRET": "a secret, never the development default",
    "CORS_ORIGINS": "the clinic's website",
    "TRUSTED_PROXIES": "the ingress controller's pod network forwards every request",
    "PUBLIC_BASE_URL": "the address the SMS provider calls: Twilio signs the full URL of the inbound-text webhook",
    "SMS_WEBHOOK_SECRET": "a secret: the SMS provider's auth token, which signs the inbound texts",
    "SMTP_HOST": "the e-mail provider (compose: the mail sink); the default sends no e-mail at all",
    "SMTP_PORT": "compose: the mail sink's port, unless deploy/.env names a provider",
    "SMTP_SECURITY": "compose: the mail sink speaks plain SMTP on the compose network",
    "SMTP_USERNAME": "the e-mail provider's login",
    "SMTP_PASSWORD": "a secret",
    "MAIL_FROM": "the clinic's own sending domain (SPF/DKIM at the provider), not the default's example.com",
    "CALENDAR_DOMAIN": "the clinic's domain in the visits' calendar UIDs, not the default's example.com",
    "SMS_API_BASE": "the SMS provider's API (compose: the SMS double); the default sends no text at all",
    "SMS_ACCOUNT_SID": "the SMS provider's account",
    "SMS_AUTH_TOKEN": "a secret",
    "SMS_FROM": "the clinic's sending number; with none the provider refuses every text",
    "ON_CALL_EMAIL": "urgent reviews must also reach the on-call clinician, not only the reviewing one",
    "SMTP_CA_FILE": "empty, read as null, which the code takes as the default's none: the system's CA bundle",
    "STRIPE_API_KEY": "a secret",
    "STRIPE_WEBHOOK_SECRET": "a secret: the signing secret of the webhook endpoint registered at Stripe",
    "STRIPE_API_BASE": "empty, read as null, which the code takes as Stripe itself (compose: the Stripe double)",
    "CLINICIAN_EMAILS": "'{}' is the default's empty map written so that it is not an empty variable (null)",
}


def empty_values(values: dict[str, str], place: str) -> list[str]:
    return [f"EMPTY {variable}: set to an empty string in {place}; nameko reads that as null, not as the config.yml "
            f"default: give it a value or leave it to its default by not setting it"
            for variable, value in sorted(values.items()) if value == "" and variable not in EMPTY_IS_NULL]


def mismatches(reads: Reads, provided: dict[str, str], place: str, how_to_set: str) -> list[str]:
    """What is read but not set, and set but not read, for one process in one place."""
    problems = []
    for variable in sorted(deployed(reads) - set(provided)):
        problems.append(f"MISSING {variable}: read by {reads.process} ({', '.join(reads.variables[variable])}) "
                        f"but not set in {place}; {how_to_set}")
    for variable in sorted(set(provided) - set(reads.variables)):
        problems.append(f"UNUSED {variable}: set for {reads.process} in {place} ({provided[variable]}) but no code "
                        f"of {reads.process} reads it; remove it there, or read it in the code")
    for variable in sorted(set(provided) & set(NOT_DEPLOYED)):
        problems.append(f"NOT DEPLOYED {variable}: set for {reads.process} in {place}; {NOT_DEPLOYED[variable]}")
    return problems


def test_the_inventory_is_derived_from_the_code():
    """Sanity of the derivation: what every process reads, and nothing it could not follow."""
    for process, reads in INVENTORY.items():
        assert {"AMQP_URI", "MONGO_URI", "LOG_LEVEL"} <= set(reads.variables), process
        assert not reads.unresolved, f"{process}: environment reads with a computed name at {reads.unresolved}"
    assert "JWT_SECRET" in INVENTORY["gateway"].variables and "JWT_SECRET" not in INVENTORY["intake"].variables
    for variable in {**NOT_DEPLOYED, **EMPTY_IS_NULL}:
        assert any(variable in reads.variables for reads in INVENTORY.values()), (
            f"{variable} is an exception in deploy/env_inventory.py but no code reads it any more")


def test_environment_reads_are_found_in_every_form(tmp_path):
    source = tmp_path / "reader.py"
    source.write_text("import os\nfrom os import environ as env, getenv\n"
                      "a = os.environ.get('A')\nb = os.environ['B']\nc = os.getenv('C', '1')\nd = env.get('D')\n"
                      "e = getenv('E')\nf = 'F' in os.environ\nNAME = 'G'\ng = os.environ[NAME]\n"
                      "h = request.environ.get('HTTP_HOST')\ni = os.environ.get(f'I_{h}')\n")
    literal, computed = environment_reads(source)
    assert sorted(variable for variable, _ in literal) == ["A", "B", "C", "D", "E", "F", "G"]
    assert computed == [12]  # a name the check cannot follow is reported, not skipped


def test_compose_sets_exactly_what_each_process_reads():
    services = compose()["services"]
    problems = []
    for process in PROCESSES:
        place = f"{COMPOSE_FILE.relative_to(ROOT)} service '{process}'"
        environment = compose_environment(services[process])
        provided = {variable: "environment" for variable in environment}
        problems += empty_values(environment, place)
        problems += mismatches(INVENTORY[process], provided, place,
                               "add it to that service's environment (or to the x-*-settings block it merges)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_kubernetes_overlay_sets_exactly_what_each_process_reads(overlay):
    documents = rendered(overlay)
    secrets = example_secrets()
    problems = []
    for process in PROCESSES:
        deployment = find(documents, "Deployment", process)
        assert deployment, f"overlay {overlay} has no Deployment {process}"
        provided = container_environment(documents, secrets, deployment[0])
        place = f"deploy/k8s overlay '{overlay}', Deployment '{process}'"
        problems += mismatches(INVENTORY[process], provided, place,
                               "add it to a ConfigMap the Deployment reads by envFrom (deploy/k8s/base/settings.yaml) "
                               "or, if secret, to a Secret in deploy/k8s/example-secrets/secrets.yaml and the "
                               "Deployment's env (secretKeyRef)")
    assert not problems, "\n".join(problems)


def drift(reads: Reads, values: dict[str, str], place: str) -> list[str]:
    """Values that differ from the code's default (both read as nameko reads them: YAML) without a reason."""
    problems = []
    for variable, value in sorted(values.items()):
        if variable in DELIBERATE or variable not in reads.defaults:
            continue
        deployed, default = yaml.safe_load(interpolated(value, {})), yaml.safe_load(reads.defaults[variable])
        if deployed != default:
            problems.append(f"DRIFT {variable}: {place} sets {value!r} for {reads.process}; the code's default is "
                            f"{reads.defaults[variable]!r} ({reads.variables[variable][0]}): use the default, or "
                            f"say why in DELIBERATE (deploy/tests/test_settings.py)")
    return problems


def test_compose_and_the_kubernetes_base_keep_the_code_defaults_unless_they_say_why():
    services, base = compose()["services"], rendered_kustomization(K8S / "base")
    problems = []
    for process in PROCESSES:
        problems += drift(INVENTORY[process], compose_environment(services[process]), f"{COMPOSE_FILE.name}")
        item = container(one(base, "Deployment", process))
        for source in item.get("envFrom", []):
            name = source["configMapRef"]["name"]
            problems += drift(INVENTORY[process], one(base, "ConfigMap", name)["data"], f"ConfigMap {name}")
    assert not problems, "\n".join(sorted(set(problems)))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_configmap_and_secret_key_is_read_by_some_process(overlay):
    """Keys no process gets (a ConfigMap nobody reads by envFrom, a Secret key no env refers to) are reported too,
    except the clinic configuration files and the files and passwords Secrets carry for mounts and operators."""
    documents = rendered(overlay)
    read = set().union(*(reads.variables for reads in INVENTORY.values()))
    problems = []
    for config_map in find(documents, "ConfigMap"):
        keys = set(config_map.get("data", {}))
        if config_map["metadata"]["name"].startswith(CLINIC_CONFIG_PREFIXES):  # clinic configuration: files
            continue
        problems += [f"UNUSED {key}: in ConfigMap {config_map['metadata']['name']} but no code reads it"
                     for key in sorted(keys - read)]
        problems += empty_values(config_map["data"], f"ConfigMap {config_map['metadata']['name']}")
    for secret in example_secrets():
        keys = {key for key in secret.get("stringData", {}) if key.isupper()}  # environment-style keys
        problems += [f"UNUSED {key}: in Secret {secret['metadata']['name']} but no code reads it"
                     for key in sorted(keys - read)]
    assert not problems, "\n".join(problems)
