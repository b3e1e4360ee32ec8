"""Which environment variables each of the platform's processes reads, derived from the code itself: the
``${VAR:default}`` references in its ``config.yml`` (Nameko's substitution) and the ``os.environ`` /
``os.getenv`` reads in its Python sources (its own package and ``chassis/``, tests left out).

The operator command (``infusion/``) counts for every process: it runs in every image (health checks).
The deployment checks (``deploy/tests/test_settings.py``) hold the compose file and the Kubernetes manifests
against this, in both directions. ``python deploy/env_inventory.py`` prints it.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from deploy.processes import PROCESSES, nameko_target  # noqa: E402

#: Nameko's ``${VAR}`` / ``${VAR:default}`` reference inside a config.yml value.
CONFIG_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")

#: Read by code, deliberately not deployed: the variable, and why.
NOT_DEPLOYED = {
    "JWT_PRIVATE_KEY": "read only by `infusion token`, which signs tokens for operators and tests; the deployed "
                       "gateway only checks tokens, so the signing key stays out of the cluster",
    "INFUSION_FAULTS": "fault injection for the chaos and fault tests (chassis/faults.py); never set in a deployment",
}

#: Nameko reads a variable set to an empty string as null (``yaml.safe_load("")``), not as its config.yml default:
#: a deployment must not set one empty, except these, whose code takes null as "none" (the variable, and why).
EMPTY_IS_NULL = {
    "JWT_PUBLIC_KEY": "null means no RS256 key (gateway/auth.py _pem), which is what an HS256 deployment wants",
    "SMTP_CA_FILE": "null means the system's CA bundle (services/notifications/channels.py SmtpSettings), which is "
                    "what a public e-mail provider needs",
    "STRIPE_API_BASE": "null means Stripe's own API (services/billing/dependencies.py StripeAccount: `or None`), "
                       "which is what production wants",
    "SMTP_USERNAME": "read raw (!raw_env_var): empty stays empty, no login, which staging's mail sink wants",
}


@dataclass
class Reads:
    """The variables one process reads: variable -> where (``path`` or ``path:line``)."""

    process: str
    variables: dict[str, list[str]] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)  # the config.yml default's text, where it has one
    unresolved: list[str] = field(default_factory=list)  # reads whose name is not a literal

    def add(self, variable: str, where: str) -> None:
        places = self.variables.setdefault(variable, [])
        if where not in places:
            places.append(where)


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def config_references(path: Path) -> list[tuple[str, str | None]]:
    """``(variable, default text or None)`` for each reference in a Nameko config.yml's values (comments are not
    configuration)."""
    found: list[tuple[str, str | None]] = []

    def walk(node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode):
            found.extend((match.group(1), match.group(2)) for match in CONFIG_REFERENCE.finditer(node.value))
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(key)
                walk(value)

    walk(yaml.compose(path.read_text()))
    return found


def _os_aliases(tree: ast.Module) -> tuple[set[str], set[str], set[str]]:
    """Names bound to the os module, to os.environ and to os.getenv in a module."""
    modules, environs, getenvs = {"os"}, set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.asname or alias.name for alias in node.names if alias.name == "os"}
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            for alias in node.names:
                if alias.name == "environ":
                    environs.add(alias.asname or alias.name)
                elif alias.name == "getenv":
                    getenvs.add(alias.asname or alias.name)
    return modules, environs, getenvs


def environment_reads(path: Path) -> tuple[list[tuple[str, int]], list[int]]:
    """``(variable, line)`` for each literal read of the environment in a Python file, and the lines of reads
    whose variable name is computed (which no check could follow)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    modules, environs, getenvs = _os_aliases(tree)
    constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                 for target in node.targets if isinstance(target, ast.Name)}

    def is_environ(node: ast.AST) -> bool:
        return ((isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name)
                 and node.value.id in modules) or (isinstance(node, ast.Name) and node.id in environs))

    def is_getenv(node: ast.AST) -> bool:
        return ((isinstance(node, ast.Attribute) and node.attr == "getenv" and isinstance(node.value, ast.Name)
                 and node.value.id in modules) or (isinstance(node, ast.Name) and node.id in getenvs))

    keys: list[tuple[ast.AST, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            function = node.func
            if is_getenv(function) or (isinstance(function, ast.Attribute) and is_environ(function.value)
                                       and function.attr in {"get", "pop", "setdefault", "__getitem__"}):
                keys.append((node.args[0], node.lineno))
        elif isinstance(node, ast.Subscript) and is_environ(node.value):
            keys.append((node.slice, node.lineno))
        elif isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            if any(is_environ(comparator) for comparator in node.comparators):
                keys.append((node.left, node.lineno))
    def name_of(key: ast.AST) -> str | None:  # a string literal, or a module-level constant holding one
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value
        return constants.get(key.id) if isinstance(key, ast.Name) else None

    literal = [(name_of(key), line) for key, line in keys if name_of(key) is not None]
    computed = [line for key, line in keys if name_of(key) is None]
    return literal, computed


def python_sources(package: Path) -> list[Path]:
    """The package's Python files that run in production: no tests, no test support."""
    return sorted(path for path in package.rglob("*.py")
                  if "tests" not in path.relative_to(package).parts
                  and path.name not in {"conftest.py", "testing.py"})


def process_reads(process: str) -> Reads:
    _, config = nameko_target(process)
    reads = Reads(process)
    for variable, default in config_references(config):
        reads.add(variable, relative(config))
        if default is not None:
            reads.defaults.setdefault(variable, default)
    for package in (config.parent, ROOT / "chassis", ROOT / "infusion"):
        for path in python_sources(package):
            literal, computed = environment_reads(path)
            for variable, line in literal:
                reads.add(variable, f"{relative(path)}:{line}")
            reads.unresolved += [f"{relative(path)}:{line}" for line in computed]
    return reads


def inventory() -> dict[str, Reads]:
    """Every process of the platform and the variables it reads."""
    return {process: process_reads(process) for process in PROCESSES}


def deployed(reads: Reads) -> set[str]:
    """The variables a deployment must set for this process."""
    return set(reads.variables) - set(NOT_DEPLOYED)


def main() -> int:
    every: dict[str, set[str]] = {}
    for process, reads in inventory().items():
        print(f"{process}: {', '.join(sorted(deployed(reads)))}")
        for variable in reads.variables:
            every.setdefault(variable, set()).add(process)
    print("\nnot deployed: " + ", ".join(f"{name} ({why})" for name, why in NOT_DEPLOYED.items()))
    print(f"\nall ({len(every)}): {', '.join(sorted(every))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
