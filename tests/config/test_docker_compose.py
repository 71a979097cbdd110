"""The production-like stack (docker-compose.yml, Dockerfile, .env.example), checked without Docker.

What can drift is checked against the code: the commands must name real entry points, and every
variable compose passes must be one the settings read, so renaming a setting breaks this test
instead of silently dropping a value in production.
"""

import importlib
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from django.core.management import get_commands

from tests.config.test_settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
PROCFILE = REPO_ROOT / "Procfile.local"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
SETTINGS_DIR = REPO_ROOT / "config" / "settings"

APP_SERVICES = ("migrate", "web", "worker", "sandbox")
# Variables compose itself consumes (interpolation, the postgres image) that Django never reads.
COMPOSE_ONLY_VARIABLES = {"POSTGRES_PASSWORD", "SANDBOX_BIND"}

_SETTINGS_VARIABLE = re.compile(r"""\benv(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]*)["']""")
_COMPOSE_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
_MANAGE_PY_COMMAND = re.compile(r"\bpython manage\.py ([\w-]+)")


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def settings_variables() -> set[str]:
    """Every NAME read with env.<cast>("NAME", ...) in config/settings/*.py."""
    return {name for path in SETTINGS_DIR.glob("*.py") for name in _SETTINGS_VARIABLE.findall(path.read_text())}


def command_text(command: str | list[str] | None) -> str:
    """A compose command or healthcheck test as one line of shell words."""
    if command is None:
        return ""
    if isinstance(command, str):
        return command
    words = command[1:] if command[0] in ("CMD", "CMD-SHELL") else command
    return " ".join(words)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments) pairs, continuation lines joined."""
    logical = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in logical.splitlines()]
    return [tuple(line.split(maxsplit=1)) for line in lines if line and not line.startswith("#")]


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's instructions by stage (`FROM ... AS name`), each stage's FROM first."""
    stages: dict[str, list[tuple[str, str]]] = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "FROM":
            name = arguments.split()[-1]
            stages[name] = []
        stages[name].append((instruction, arguments))
    return stages


def copied_from_context(stage: list[tuple[str, str]]) -> list[str]:
    """The build-context paths a stage's COPY instructions take (not those of --from=)."""
    sources = []
    for instruction, arguments in stage:
        if instruction == "COPY" and not arguments.startswith("--from"):
            words = [word for word in arguments.split() if not word.startswith("--")]
            sources += [word.rstrip("/") for word in words[:-1]]
    return sources


def every_command(compose: dict) -> list[str]:
    """The commands and healthchecks of every service, and the Dockerfile's RUN and CMD lines."""
    commands = []
    for service in compose["services"].values():
        commands.append(command_text(service.get("command")))
        commands.append(command_text(service.get("healthcheck", {}).get("test")))
    for instruction, arguments in dockerfile_instructions():
        if instruction == "CMD":
            commands.append(command_text(json.loads(arguments)))
        elif instruction == "RUN":
            commands.append(arguments)
    return [command for command in commands if command]


def test_the_stack_has_every_service():
    compose = load_compose()

    services = set(compose["services"])

    assert {"postgres", "redis", "migrate", "web", "worker", "sandbox"} <= services


def test_postgres_redis_web_and_worker_have_healthchecks():
    compose = load_compose()

    healthchecks = {name: service.get("healthcheck") for name, service in compose["services"].items()}

    for name in ("postgres", "redis", "web", "worker"):
        assert healthchecks[name], name
        assert healthchecks[name]["test"][0] in ("CMD", "CMD-SHELL"), name
    assert "pg_isready" in healthchecks["postgres"]["test"]
    assert "ping" in healthchecks["redis"]["test"]
    assert "/healthz" in command_text(healthchecks["web"]["test"])


def test_web_and_worker_start_after_healthy_postgres_and_redis_and_finished_migrations():
    compose = load_compose()

    services = compose["services"]

    for name in ("web", "worker"):
        depends_on = services[name]["depends_on"]
        assert depends_on["postgres"]["condition"] == "service_healthy", name
        assert depends_on["redis"]["condition"] == "service_healthy", name
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"


def test_the_deployment_installs_the_recurring_billing_jobs_once_the_schema_is_there():
    compose = load_compose()

    steps = [step.strip() for step in command_text(compose["services"]["migrate"]["command"]).split("&&")]
    names = [name for step in steps for name in _MANAGE_PY_COMMAND.findall(step)]

    # Without the schedules the worker runs no renewals, dunning, expiry or reconciliation at all.
    assert "setup_schedules" in names
    assert names.index("migrate") < names.index("setup_schedules")
    assert "setup_schedules" in get_commands()


def test_every_app_service_builds_from_the_dockerfile():
    compose = load_compose()

    builds = {name: compose["services"][name].get("build") for name in APP_SERVICES}

    assert DOCKERFILE.is_file()
    for name, build in builds.items():
        if isinstance(build, dict):
            assert (REPO_ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")) == DOCKERFILE, name
        else:
            assert build == ".", name


def test_the_sandbox_is_optional_and_web_reaches_it_by_service_name():
    compose = load_compose()

    services = compose["services"]

    assert services["sandbox"]["profiles"] == ["sandbox"]
    assert "sandbox" not in services["web"]["depends_on"]
    assert services["web"]["environment"]["YOOKASSA_SANDBOX_API_URL"] == "http://sandbox:8001/v3"
    assert services["worker"]["environment"]["YOOKASSA_SANDBOX_API_URL"] == "http://sandbox:8001/v3"
    # The browser-facing address is the sandbox's alone: web and worker have no use for it.
    assert "YOOKASSA_SANDBOX_PUBLIC_URL" not in services["web"]["environment"]
    assert services["sandbox"]["environment"]["YOOKASSA_SANDBOX_PUBLIC_URL"].endswith("http://localhost:8001}")
    assert services["sandbox"]["environment"]["YOOKASSA_SANDBOX_NOTIFICATION_URL"].startswith("http://web:8000/")
    # Published on port 8001, on loopback only unless SANDBOX_BIND says otherwise: its index lists
    # recent payments to anyone who reaches it.
    assert services["sandbox"]["ports"] == ["${SANDBOX_BIND:-127.0.0.1}:8001:8001"]


def test_web_is_published_on_every_interface_as_the_service_it_is():
    services = load_compose()["services"]

    assert services["web"]["ports"] == ["8000:8000"]


def test_only_the_sandbox_service_turns_the_sandbox_on_and_the_rest_of_the_stack_is_told_so():
    services = load_compose()["services"]

    assert services["sandbox"]["environment"]["YOOKASSA_SANDBOX"] == "true"
    for name in ("migrate", "web", "worker"):
        # Passed on from the shell or .env, never defaulted: production refuses a silent sandbox.
        assert "YOOKASSA_SANDBOX" in services[name]["environment"], name
        assert services[name]["environment"]["YOOKASSA_SANDBOX"] is None, name
    assert "YOOKASSA_SANDBOX=true docker compose --profile sandbox up" in COMPOSE_FILE.read_text()


def test_daphne_commands_serve_a_real_asgi_application():
    commands = [command for command in every_command(load_compose()) if command.startswith("daphne ")]

    targets = [shlex.split(command)[-1] for command in commands]

    assert targets, "no daphne command found"
    for target in targets:
        module_name, _, attribute = target.partition(":")
        application = getattr(importlib.import_module(module_name), attribute, None)
        assert callable(application), target


def daphne_argv(command: str | list[str]) -> list[str]:
    """A daphne command line as words, without what may differ by place: the address and port."""
    words = shlex.split(command) if isinstance(command, str) else list(command)
    words = words[words.index("daphne") :]
    for flag in ("-b", "-p"):
        index = words.index(flag)
        del words[index : index + 2]
    return words


def every_daphne_argv() -> dict[str, list[str]]:
    """How the web process starts in the compose stack, in the image, and in the local run."""
    [dockerfile_cmd] = [
        json.loads(arguments) for instruction, arguments in dockerfile_stages()["service"] if instruction == "CMD"
    ]
    [procfile_web] = [line.split(":", 1)[1] for line in PROCFILE.read_text().splitlines() if line.startswith("web:")]
    return {
        "docker-compose.yml": daphne_argv(load_compose()["services"]["web"]["command"]),
        "Dockerfile": daphne_argv(dockerfile_cmd),
        "Procfile.local": daphne_argv(procfile_web),
    }


def test_daphne_starts_everywhere_with_the_same_flags_no_server_banner_and_an_http_timeout():
    commands = every_daphne_argv()

    compose_argv = commands["docker-compose.yml"]

    assert commands == dict.fromkeys(commands, compose_argv)
    assert "--no-server-name" in compose_argv
    assert int(compose_argv[compose_argv.index("--http-timeout") + 1]) > 0


def test_manage_py_commands_exist():
    commands = every_command(load_compose())

    names = {name for command in commands for name in _MANAGE_PY_COMMAND.findall(command)}

    assert {"migrate", "load_demo_catalog", "qcluster", "runsandbox", "collectstatic"} <= names
    assert names <= set(get_commands()), names - set(get_commands())


def test_every_variable_compose_passes_is_one_the_settings_read():
    compose_text = COMPOSE_FILE.read_text()
    compose = load_compose()
    known = settings_variables() | COMPOSE_ONLY_VARIABLES

    referenced = set(_COMPOSE_REFERENCE.findall(compose_text))
    passed = {name for service in APP_SERVICES for name in compose["services"][service]["environment"]}

    assert referenced <= known, referenced - known
    assert passed <= settings_variables(), passed - settings_variables()


def test_secrets_are_required_from_the_environment_never_written_down():
    compose = load_compose()

    environment = compose["services"]["web"]["environment"]
    postgres_environment = compose["services"]["postgres"]["environment"]

    assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert "${POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]
    assert postgres_environment["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    for name in ("YOOKASSA_SECRET_KEY", "MAILGUN_API_KEY", "MAILGUN_WEBHOOK_SIGNING_KEY", "JWT_SECRET"):
        assert environment[name] == f"${{{name}:-}}", name


def test_env_example_mentions_every_variable_the_settings_and_compose_read():
    env_example = ENV_EXAMPLE.read_text()
    compose_text = COMPOSE_FILE.read_text()

    names = settings_variables() | set(_COMPOSE_REFERENCE.findall(compose_text))

    assert len(settings_variables()) > 20
    missing = {name for name in names if not re.search(rf"^#? ?{name}=", env_example, re.MULTILINE)}
    assert not missing, missing


def test_dockerfile_installs_the_project_from_pyproject_and_runs_unprivileged():
    dockerignore = (REPO_ROOT / ".dockerignore").read_text().split()

    instructions = dockerfile_instructions()

    assert instructions[0] == ("FROM", "python:3.11-slim AS service")
    copies = [arguments for instruction, arguments in instructions if instruction == "COPY"]
    assert copies[0].startswith("pyproject.toml ")
    runs = " ".join(arguments for instruction, arguments in instructions if instruction == "RUN")
    assert "pip install --no-cache-dir" in runs
    assert "[dev]" not in runs
    environment = " ".join(arguments for instruction, arguments in instructions if instruction in ("ENV", "ARG"))
    assert "DJANGO_SETTINGS_MODULE=config.settings.production" in environment
    assert "PYTHONUNBUFFERED=1" in environment
    assert "SECRET_KEY" not in environment
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    assert ("EXPOSE", "8000") in instructions
    assert {".venv", "var", ".git", ".env"} <= set(dockerignore)


def test_the_image_builds_its_static_files_with_settings_that_start():
    [collectstatic] = [
        arguments
        for instruction, arguments in dockerfile_instructions()
        if instruction == "RUN" and "manage.py collectstatic" in arguments
    ]
    # NAME="$(python -c '...')" is a throwaway secret made in the step; NAME=value is set as it is.
    generated = re.findall(r"(\w+)=\"\$\(python -c '[^']*'\)\"", collectstatic)
    given = dict(re.findall(r"(?:^|\s)(\w+)=(\w+)(?=\s)", collectstatic))

    env = {name: secrets.token_urlsafe(64) for name in generated} | given
    loaded = load_settings("config.settings.production", ["STATIC_ROOT", "STORAGES"], env)

    assert {"SECRET_KEY", "JWT_SECRET"} <= env.keys()
    assert loaded["STORAGES"]["staticfiles"]["BACKEND"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"


def test_the_readme_documents_every_variable_the_settings_read():
    readme = (REPO_ROOT / "README.md").read_text()

    undocumented = {name for name in settings_variables() if f"`{name}`" not in readme}

    assert not undocumented, undocumented


# --- The production image without the sandbox, tests and bench (issue 10) ------------------------

DEV_ONLY_PATHS = {"sandbox", "tests", "bench", "frontend_examples"}
# The image's one copy of the code: both stages COPY into WORKDIR /app.
_IMAGE_PROBE = """
import importlib.abc, json, sys
class _NoSuchPackage(importlib.abc.MetaPathFinder):
    # What is not in the image cannot be imported there: the development install's finder would
    # otherwise fetch these from the repository.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {absent!r}:
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, _NoSuchPackage())
import django
django.setup()
import config.urls  # every URL, view and schema the service serves
from django.conf import settings
from django.core.management import get_commands
from django.template import engines
print(json.dumps({{
    "apps": settings.INSTALLED_APPS,
    "template_dirs": [str(d) for d in engines["django"].template_dirs],
    "commands": sorted(get_commands()),
}}))
"""


def pyproject_packages() -> set[str]:
    """The top-level packages pyproject.toml installs (its setuptools `include` patterns)."""
    include = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    return {pattern.rstrip("*") for pattern in include["include"]}


def image_tree(stage: str, destination: Path) -> Path:
    """What a stage's COPY instructions put in /app, copied from the repository into `destination`."""
    stages = dockerfile_stages()
    chain = [stage]
    while (parent := stages[chain[-1]][0][1].split()[0]) in stages:
        chain.append(parent)
    for name in reversed(chain):
        for source in copied_from_context(stages[name]):
            if source in ("pyproject.toml", "README.md*"):
                continue  # the dependency install's /tmp/project, removed in the same step
            path = REPO_ROOT / source
            if path.is_dir():
                shutil.copytree(path, destination / source, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(path, destination / source)
    return destination


def probe_image(tree: Path, settings_module: str) -> dict:
    """django.setup() in `tree` as the image would run it, with the dev-only packages not importable."""
    absent = sorted(path.name for path in REPO_ROOT.iterdir() if path.name in DEV_ONLY_PATHS - set(os.listdir(tree)))
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(tree),
        "DJANGO_SETTINGS_MODULE": settings_module,
        "SECRET_KEY": secrets.token_urlsafe(64),
        "JWT_SECRET": secrets.token_urlsafe(48),
        "YOOKASSA_SANDBOX": "true",
    }
    completed = subprocess.run(
        [sys.executable, "-c", _IMAGE_PROBE.format(absent=absent)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_the_service_image_copies_the_service_packages_and_nothing_of_the_sandbox_tests_or_bench():
    service = dockerfile_stages()["service"]

    copied = copied_from_context(service)

    assert "." not in copied  # no `COPY . .`: an allow-list, so nothing new ships by accident
    assert not DEV_ONLY_PATHS & {Path(source).parts[0] for source in copied}, copied
    # Every package the project installs is in the image, but the emulator.
    assert pyproject_packages() - {"sandbox"} <= set(copied), pyproject_packages() - set(copied)
    assert "manage.py" in copied
    assert {"tests", "bench"} <= set((REPO_ROOT / ".dockerignore").read_text().split())


def test_the_sandbox_image_is_the_service_image_plus_the_emulator_with_its_own_settings():
    sandbox = dockerfile_stages()["sandbox"]

    assert sandbox[0] == ("FROM", "service AS sandbox")
    assert copied_from_context(sandbox) == ["sandbox"]
    assert ("ENV", "DJANGO_SETTINGS_MODULE=config.settings.sandbox") in sandbox
    [cmd] = [json.loads(arguments) for instruction, arguments in sandbox if instruction == "CMD"]
    assert cmd[:3] == ["python", "manage.py", "runsandbox"]


def test_compose_runs_the_service_target_and_only_its_sandbox_service_the_sandbox_target():
    services = load_compose()["services"]

    targets = {name: services[name]["build"]["target"] for name in APP_SERVICES}

    assert targets == {"migrate": "service", "web": "service", "worker": "service", "sandbox": "sandbox"}
    assert set(targets.values()) <= set(dockerfile_stages())
    # Two images, two names: the sandbox's must not replace the service's cinema-billing:local.
    assert services["sandbox"]["image"] != services["web"]["image"]
    assert command_text(services["sandbox"]["command"]).startswith("python manage.py runsandbox")


def test_the_service_image_starts_on_production_settings_without_the_sandbox(tmp_path):
    tree = image_tree("service", tmp_path)

    probed = probe_image(tree, "config.settings.production")

    assert not DEV_ONLY_PATHS & set(os.listdir(tree))
    assert "sandbox" not in probed["apps"]
    assert not [d for d in probed["template_dirs"] if "sandbox" in Path(d).parts]
    assert "runsandbox" not in probed["commands"]
    assert "qcluster" in probed["commands"]


def test_the_sandbox_image_starts_the_emulator_on_its_own_settings(tmp_path):
    tree = image_tree("sandbox", tmp_path)

    probed = probe_image(tree, "config.settings.sandbox")

    assert "sandbox" in probed["apps"]
    assert "runsandbox" in probed["commands"]
    assert not {"tests", "bench"} & set(os.listdir(tree))
