"""Reading the deployment files as the tools would: the compose file (YAML anchors and merges resolved), each
Kustomize overlay rendered by ``kubectl kustomize``, the example Secrets, and the Dockerfile's stages."""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
K8S = DEPLOY / "k8s"
OVERLAYS = tuple(sorted(path.name for path in (K8S / "overlays").iterdir() if path.is_dir()))
EXAMPLE_SECRETS = K8S / "example-secrets" / "secrets.yaml"
KUBECTL = shutil.which("kubectl")


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_environment(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def interpolated(value: str, variables: dict[str, str]) -> str:
    """Compose's interpolation of ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}`` (the default only when
    unset), ``${NAME:?error}`` and ``${NAME?error}`` from ``variables``."""
    def replace(match: re.Match) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        unset = name not in variables
        missing = unset or (operator in (":-", ":?") and variables[name] == "")
        if operator in (":?", "?") and missing:
            raise AssertionError(f"compose needs {name}: {argument}")
        if operator in (":-", "-") and missing:
            return argument
        return variables.get(name, "")

    return re.sub(r"\$\{(\w+)(?:(:-|:\?|-|\?)([^}]*))?\}", replace, value)


def rendered(overlay: str) -> tuple[dict, ...]:
    """The overlay's resources as ``kubectl kustomize`` renders them (skips the test where kubectl is absent)."""
    return rendered_kustomization(K8S / "overlays" / overlay)


@functools.cache
def rendered_kustomization(folder: Path) -> tuple[dict, ...]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed here: the Kubernetes overlays were not rendered or validated "
                    "(install kubectl, which carries Kustomize, to run these checks)")
    result = subprocess.run([KUBECTL, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(folder)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"kubectl kustomize {folder.relative_to(ROOT)} failed:\n{result.stderr}"
    return tuple(document for document in yaml.safe_load_all(result.stdout) if document)


def example_secrets() -> list[dict]:
    return [document for document in yaml.safe_load_all(EXAMPLE_SECRETS.read_text()) if document]


def find(documents: tuple[dict, ...] | list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [document for document in documents
            if document["kind"] == kind and (name is None or document["metadata"]["name"] == name)]


def one(documents: tuple[dict, ...] | list[dict], kind: str, name: str) -> dict:
    found = find(documents, kind, name)
    assert len(found) == 1, f"expected one {kind} named {name!r}, found {len(found)}"
    return found[0]


def container(deployment: dict, name: str | None = None) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    name = name or deployment["metadata"]["name"]
    matching = [item for item in containers if item["name"] == name]
    assert matching, f"Deployment {deployment['metadata']['name']} has no container named {name!r}"
    return matching[0]


def container_environment(documents: tuple[dict, ...], secrets: list[dict], deployment: dict) -> dict[str, str]:
    """Every variable the Deployment's container gets, and where from (env, or a ConfigMap or Secret by envFrom)."""
    item = container(deployment)
    sources: dict[str, str] = {}
    for source in item.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            data = one(documents, "ConfigMap", name).get("data", {})
            sources.update({key: f"ConfigMap {name}" for key in data})
        else:
            name = source["secretRef"]["name"]
            secret = one(secrets, "Secret", name)
            keys = {**secret.get("data", {}), **secret.get("stringData", {})}
            sources.update({key: f"Secret {name}" for key in keys})
    for variable in item.get("env", []):
        reference = variable.get("valueFrom", {})
        if "secretKeyRef" in reference:
            sources[variable["name"]] = f"Secret {reference['secretKeyRef']['name']}"
        elif "configMapKeyRef" in reference:
            sources[variable["name"]] = f"ConfigMap {reference['configMapKeyRef']['name']}"
        else:
            sources[variable["name"]] = f"Deployment {deployment['metadata']['name']} env"
    return sources


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, instruction: str) -> str | None:
        values = [value for name, value in self.instructions if name == instruction]
        return values[-1] if values else None

    def all(self, instruction: str) -> list[str]:
        return [value for name, value in self.instructions if name == instruction]


def dockerfile_stages() -> tuple[dict[str, str], dict[str, Stage]]:
    """The Dockerfile's global ARG defaults and its stages by name (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    arguments: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        pending = f"{pending} {line}".strip() if pending else line
        if pending.count("[") > pending.count("]"):  # an exec-form JSON array over several lines
            continue
        instruction, _, value = pending.partition(" ")
        instruction, value, pending = instruction.upper(), value.strip(), ""
        if instruction == "FROM":
            words = value.split()
            current = Stage(name=words[-1] if "AS" in (word.upper() for word in words) else words[0], base=words[0])
            stages[current.name] = current
        elif current is None and instruction == "ARG":
            name, _, default = value.partition("=")
            arguments[name] = default
        elif current is not None:
            current.instructions.append((instruction, value))
    return arguments, stages


def exec_form(value: str) -> list[str]:
    """A CMD/ENTRYPOINT/HEALTHCHECK command as its argument list (exec form JSON, else shell words)."""
    value = value.strip()
    if value.startswith("["):
        return json.loads(value)
    return shlex.split(value)


def stage_chain(stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built on, nearest first."""
    chain = [stages[name]]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


def inherited(stages: dict[str, Stage], name: str, instruction: str) -> str | None:
    for stage in stage_chain(stages, name):
        value = stage.last(instruction)
        if value is not None:
            return value
    return None
