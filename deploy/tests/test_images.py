"""The images (deploy/docker/Dockerfile): a pinned base, non-root, no build tools in what runs, a health check,
every command an image, the compose file or a Kubernetes manifest runs exists in the code, and each image holds
the packages its code imports (the platform's no Stripe double, the Stripe double's no platform)."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deploy.env_inventory import python_sources
from deploy.processes import PROCESSES, SERVICE_CLASSES, nameko_target
from deploy.tests.manifests import (
    OVERLAYS,
    ROOT,
    compose,
    container,
    dockerfile_stages,
    exec_form,
    find,
    inherited,
    rendered,
    stage_chain,
)
from infusion.cli import build_parser

ARGUMENTS, STAGES = dockerfile_stages()
DOUBLES = ("stripe-double", "sms-double", "mail-sink")
TARGETS = (*PROCESSES, *DOUBLES)
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|gcc|g\+\+|make|build-essential|pip install)\b")
#: The repository's own top-level packages (not installed from requirements.txt).
OWN_PACKAGES = {"chassis", "services", "gateway", "infusion", "deploy", "tests"}
STRIPE_DOUBLE = ROOT / "services" / "billing" / "stripe_double.py"


def healthcheck_command(value: str) -> list[str]:
    _, separator, command = value.partition("CMD ")
    assert separator, f"HEALTHCHECK without CMD: {value}"
    return exec_form(command)


def base_image(stage: str) -> str:
    base = stage_chain(STAGES, stage)[-1].base
    return re.sub(r"\$\{(\w+)\}", lambda match: ARGUMENTS[match.group(1)], base)


def every_command() -> list[tuple[str, list[str]]]:
    """(where, argv) of every command the deployment runs: image CMDs and health checks, compose health checks
    and commands of our images, Kubernetes container commands and exec probes of every overlay."""
    commands = []
    for name in TARGETS:
        commands.append((f"Dockerfile target {name} CMD", exec_form(inherited(STAGES, name, "CMD"))))
        healthcheck = inherited(STAGES, name, "HEALTHCHECK")
        if healthcheck:
            commands.append((f"Dockerfile target {name} HEALTHCHECK", healthcheck_command(healthcheck)))
    for name, service in compose()["services"].items():
        if "build" in service and "command" in service:
            commands.append((f"compose service {name} command", service["command"]))
        test = service.get("healthcheck", {}).get("test")
        if "build" in service and test:
            commands.append((f"compose service {name} healthcheck", test[1:]))
    return commands


def kubernetes_commands(overlay: str) -> list[tuple[str, list[str]]]:
    commands = []
    for deployment in find(rendered(overlay), "Deployment"):
        for item in deployment["spec"]["template"]["spec"]["containers"]:
            where = f"overlay {overlay} Deployment {deployment['metadata']['name']}"
            if "command" in item:
                commands.append((f"{where} command", item["command"] + item.get("args", [])))
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if "exec" in item.get(probe, {}):
                    commands.append((f"{where} {probe}", item[probe]["exec"]["command"]))
            for hook, handler in item.get("lifecycle", {}).items():
                if "exec" in handler:
                    commands.append((f"{where} {hook}", handler["exec"]["command"]))
    return commands


def check_command(where: str, argv: list[str]) -> None:
    """Fail unless ``argv`` runs something that exists in this repository's code (or a pinned package)."""
    program = argv[0]
    if program == "nameko":
        assert argv[1:3] == ["run", "--config"], f"{where}: expected `nameko run --config FILE TARGET`: {argv}"
        config, target = ROOT / argv[3], argv[4]
        assert config.is_file(), f"{where}: no config file {argv[3]}"
        module, _, attribute = target.partition(":")
        assert attribute, f"{where}: name the service class explicitly (module:Class): {target}"
        assert hasattr(importlib.import_module(module), attribute), f"{where}: {module} has no {attribute}"
        process = module.split(".")[1] if module.startswith("services.") else module.split(".")[0]
        expected_target, expected_config = nameko_target(process)
        assert (target, config) == (expected_target, expected_config), (
            f"{where}: runs {target} with {argv[3]}; deploy/processes.py runs {expected_target} with "
            f"{expected_config.relative_to(ROOT)}")
    elif program == "infusion":
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"{where}: `{' '.join(argv)}` is not a command infusion/cli.py knows (exit {exc.code})")
    elif program == "python" and argv[1] == "-m":
        assert importlib.util.find_spec(argv[2]) is not None, f"{where}: no module {argv[2]}"
        check_options(where, argv[2], argv[3:])
    elif program == "python" and argv[1] == "-c":
        compile(argv[2], where, "exec")
        for path in re.findall(r"http://127\.0\.0\.1:\d+(/\w+)", argv[2]):
            assert any(route.path == path for route in gateway_routes()), f"{where}: the gateway has no {path}"
    elif program == "sleep":
        assert argv[1:] and argv[1].isdigit(), f"{where}: {argv}"
    else:
        pytest.fail(f"{where}: unknown program {program!r}; teach deploy/tests/test_images.py what checks it")


class Parsed(Exception):
    """Raised instead of running the module once its options are parsed."""


def check_options(where: str, module: str, arguments: list[str]) -> None:
    """A module of ours run with ``python -m`` takes these options: its ``main(argv)`` parses them (with the
    parsing stopped before anything starts)."""
    main = getattr(importlib.import_module(module), "main", None)
    if main is None:
        return

    def parse_only(parser: argparse.ArgumentParser, args=None, namespace=None):
        raise Parsed(original(parser, args, namespace))

    original = argparse.ArgumentParser.parse_args
    try:
        with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_only):
            main(arguments)
    except Parsed:
        return
    except SystemExit as exc:
        pytest.fail(f"{where}: `python -m {module} {' '.join(arguments)}` is refused by its options (exit {exc.code})")
    pytest.fail(f"{where}: {module}.main parsed no options")


def gateway_routes():
    from gateway.endpoints import ROUTES

    return ROUTES


@pytest.mark.parametrize("where, argv", [pytest.param(where, argv, id=where) for where, argv in every_command()])
def test_every_image_and_compose_command_exists_in_the_code(where, argv):
    check_command(where, argv)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_kubernetes_command_exists_in_the_code(overlay):
    commands = kubernetes_commands(overlay)
    assert commands
    for where, argv in commands:
        check_command(where, argv)


@pytest.mark.parametrize("target", TARGETS)
def test_each_image_runs_as_a_non_root_user_on_a_pinned_base(target):
    user = inherited(STAGES, target, "USER")
    assert user and user.split(":")[0] not in {"0", "root"}, f"target {target} runs as root"
    image = base_image(target)
    assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?", image), (
        f"target {target}: base image {image} is not pinned by an exact version tag (or digest)")


@pytest.mark.parametrize("target", TARGETS)
def test_what_runs_carries_no_build_tools(target):
    """Packages are installed in build stages; the stages an image is made of only copy their results."""
    for stage in stage_chain(STAGES, target):
        for command in stage.all("RUN"):
            assert not BUILD_TOOLS.search(command), f"stage {stage.name} (part of {target}) runs: {command}"
        for source in stage.all("COPY"):
            origin = re.search(r"--from=(\S+)", source)
            assert origin is None or origin.group(1) in STAGES, f"stage {stage.name} copies from {origin.group(1)}"


@pytest.mark.parametrize("target", PROCESSES)
def test_each_platform_image_checks_its_health(target):
    command = healthcheck_command(inherited(STAGES, target, "HEALTHCHECK"))
    if target == "gateway":
        assert "/health" in command[-1]
    else:
        assert command == ["infusion", "health", target]


def test_the_services_are_those_the_platform_runs():
    assert set(SERVICE_CLASSES) | {"gateway"} == set(PROCESSES)
    assert set(PROCESSES) <= set(STAGES), f"no Dockerfile target for {set(PROCESSES) - set(STAGES)}"


def test_the_images_leave_the_development_section_out_of_requirements():
    """The build keeps requirements.txt up to its "# Development, tests and tooling" line: the line must be there,
    after every package the code imports at run time."""
    text = (ROOT / "requirements.txt").read_text()
    assert "\n# Development, tests and tooling" in text
    runtime = text.split("\n# Development, tests and tooling")[0]
    for package in ("nameko", "kombu", "pymongo", "marshmallow", "PyJWT", "Werkzeug", "prometheus_client"):
        assert re.search(rf"^{package}==", runtime, re.MULTILINE), f"{package} is not in the runtime section"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_runs_the_image_of_each_process_with_its_command(overlay):
    documents = rendered(overlay)
    for process in PROCESSES:
        deployment = find(documents, "Deployment", process)
        assert deployment, f"overlay {overlay} has no Deployment {process}"
        item = container(deployment[0])
        assert item["image"].rsplit("/", 1)[-1].startswith(f"{process}:"), item["image"]
        assert item["command"] == exec_form(inherited(STAGES, process, "CMD"))


# --- what each image installs ------------------------------------------------------------------------------------


def filtered_requirements(stage: str, output: str, tmp_path: Path) -> dict[str, str]:
    """Runs the stage's RUN that writes ``output`` from requirements.txt (its sed or grep line) on this repository's
    requirements.txt: the requirement lines it keeps, by package name."""
    commands = [command for command in STAGES[stage].all("RUN") if f"> {output}" in command]
    assert len(commands) == 1, f"stage {stage}: expected one RUN writing {output}, found {len(commands)}"
    (tmp_path / "requirements.txt").write_text((ROOT / "requirements.txt").read_text())
    subprocess.run(["bash", "-c", commands[0].replace("/tmp/", f"{tmp_path}/")], cwd=tmp_path, check=True,
                   timeout=30)
    lines = (tmp_path / Path(output).name).read_text().splitlines()
    return {canonicalize_name(Requirement(line).name): line for line in lines if line and not line.startswith("#")}


def installed_with(requirements: set[str]) -> set[str]:
    """What pip installs for these packages: they and what they require, transitively (read from this virtual
    environment, which holds the same pins)."""
    installed, pending = set(), [canonicalize_name(name) for name in requirements]
    while pending:
        name = pending.pop()
        if name in installed:
            continue
        installed.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonicalize_name(requirement.name))
    return installed


def catches_import_error(handler: ast.ExceptHandler) -> bool:
    caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(item, ast.Name) and item.id in {"ImportError", "ModuleNotFoundError"} for item in caught)


def optional_imports(tree: ast.Module) -> set[ast.AST]:
    """The imports inside a ``try`` that catches ImportError (the code goes on without the package)."""
    optional: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(catches_import_error(handler) for handler in node.handlers):
            optional |= {inner for statement in node.body for inner in ast.walk(statement)}
    return optional


def imported_modules(path: Path) -> set[str]:
    """The top-level modules a file imports, the standard library and optional imports left out (the
    repository's own included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    optional = optional_imports(tree)
    names = set()
    for node in ast.walk(tree):
        if node in optional:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name != "__future__"}


def imported_packages(paths: list[Path]) -> dict[str, str]:
    """The installed packages (by name) that these files import, each with one file that imports it."""
    providers = importlib.metadata.packages_distributions()
    found: dict[str, str] = {}
    for path in paths:
        for module in sorted(imported_modules(path) - OWN_PACKAGES):
            assert module in providers, f"{path.relative_to(ROOT)} imports {module}, which no installed package has"
            for package in providers[module]:
                found.setdefault(canonicalize_name(package), f"{path.relative_to(ROOT)} imports {module}")
    return found


def test_the_platform_images_install_what_the_platform_imports_and_neither_the_stripe_double_nor_the_tooling(
        tmp_path):
    """The build installs requirements.txt less its development, tests and tooling section: every
    package the code in the platform images imports (the notifications doubles included, they run on the same
    layer) must still be installed, and the Stripe double's localstripe and aiohttp must not be."""
    runtime = filtered_requirements("build", "/tmp/runtime-requirements.txt", tmp_path)
    installed = installed_with(set(runtime))
    sources = [path for package in ("chassis", "services", "gateway", "infusion")
               for path in python_sources(ROOT / package) if path != STRIPE_DOUBLE]
    missing = {package: where for package, where in imported_packages(sources).items() if package not in installed}
    assert not missing, ("the platform images would not install: " + "; ".join(
        f"{package} ({where})" for package, where in sorted(missing.items())) + ": keep it in requirements.txt's "
        "runtime section and out of the sed line of deploy/docker/Dockerfile's build stage")
    for package in ("localstripe", "aiohttp", "mongoeco", "pytest", "ruff", "schemathesis"):
        assert package not in installed, f"the platform images install {package}"


def test_the_stripe_double_image_holds_its_module_and_installs_what_it_imports(tmp_path):
    """``python -m services.billing.stripe_double`` in the stripe-double image: the module and its packages'
    __init__ files are copied in and import nothing of the platform, and what the module imports is installed, at
    requirements.txt's pins (the image's grep line takes localstripe's and aiohttp's from there)."""
    copied = {source for command in STAGES["stripe-double"].all("COPY") if "--from" not in command
              for source in command.split()[:-1]}
    packages = [ROOT / "services" / "__init__.py", ROOT / "services" / "billing" / "__init__.py"]
    for path in (*packages, STRIPE_DOUBLE):
        assert str(path.relative_to(ROOT)) in copied, f"the stripe-double image does not copy {path.relative_to(ROOT)}"
        own = imported_modules(path) & OWN_PACKAGES
        assert not own, f"{path.relative_to(ROOT)} imports {own}, which the stripe-double image does not hold"
    pins = filtered_requirements("stripe-double-build", "/tmp/stripe-double-requirements.txt", tmp_path)
    assert set(pins) == {"localstripe", "aiohttp"}, f"the stripe-double image installs {sorted(pins.values())}"
    missing = set(imported_packages([STRIPE_DOUBLE])) - installed_with(set(pins))
    assert not missing, f"the stripe-double image does not install {sorted(missing)}, which stripe_double.py imports"
