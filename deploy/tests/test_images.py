"""The images (deploy/docker/Dockerfile): a pinned base, non-root, no build tools in what runs, a health check,
and every command an image, the compose file or a Kubernetes manifest runs exists in the code."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re

import pytest

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
DOUBLES = ("stripe-double", "sms-double")
TARGETS = (*PROCESSES, *DOUBLES)
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|gcc|g\+\+|make|build-essential|pip install)\b")
#: Commands whose code arrives with another branch: until it is there they are reported as expected failures
#: (xfail), and checked like every other command as soon as it is.
ARRIVING = {
    "infusion health": "not checked yet: chassis/cli.py has no `health` command (the lead's reliability change "
                       "adds `infusion health SERVICE`)",
    "services.notifications.sms_double": "not checked yet: no module services.notifications.sms_double (the "
                                         "notifications branch adds the SMS double; if it is named otherwise, "
                                         "change the Dockerfile, compose and staging overlay)",
}


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
        if argv[1:2] == ["health"] and "health" not in cli_commands():
            pytest.xfail(ARRIVING["infusion health"])
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"{where}: `{' '.join(argv)}` is not a command chassis/cli.py knows (exit {exc.code})")
    elif program == "python" and argv[1] == "-m":
        if argv[2] in ARRIVING and importlib.util.find_spec(argv[2]) is None:
            pytest.xfail(ARRIVING[argv[2]])
        assert importlib.util.find_spec(argv[2]) is not None, f"{where}: no module {argv[2]}"
    elif program == "python" and argv[1] == "-c":
        compile(argv[2], where, "exec")
        for path in re.findall(r"http://127\.0\.0\.1:\d+(/\w+)", argv[2]):
            assert any(route.path == path for route in gateway_routes()), f"{where}: the gateway has no {path}"
    elif program == "localstripe":
        pins = re.findall(r"localstripe==([\w.]+)", (ROOT / "deploy/docker/Dockerfile").read_text())
        assert pins, f"{where}: localstripe is not installed pinned (localstripe==X.Y.Z) in the Dockerfile"
        required = re.findall(r"^localstripe==([\w.]+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
        assert not required or set(pins) == set(required), (
            f"{where}: the Dockerfile pins localstripe {pins}, requirements.txt {required}")
    elif program == "sleep":
        assert argv[1:] and argv[1].isdigit(), f"{where}: {argv}"
    else:
        pytest.fail(f"{where}: unknown program {program!r}; teach deploy/tests/test_images.py what checks it")


def cli_commands() -> set[str]:
    """The first words `infusion` knows (dlq, outbox, token...)."""
    return {name for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices}


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
    arriving = []
    for where, argv in commands:
        try:
            check_command(where, argv)
        except pytest.xfail.Exception as exc:  # checked once the code arrives; the others are checked now
            arriving.append(str(exc))
    if arriving:
        pytest.xfail("; ".join(sorted(set(arriving))))


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


def test_the_images_leave_the_tests_and_tooling_section_out_of_requirements():
    """The build keeps requirements.txt up to its "# Tests and tooling" line: the line must be there, after
    every package the code imports at run time."""
    text = (ROOT / "requirements.txt").read_text()
    assert "\n# Tests and tooling" in text
    runtime = text.split("\n# Tests and tooling")[0]
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
