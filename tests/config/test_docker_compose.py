"""The production-like stack (docker-compose.yml, Dockerfile, .env.example), checked without Docker.

What can drift is checked against the code: the commands must name real entry points, and every
variable compose passes must be one the settings read, so renaming a setting breaks this test
instead of silently dropping a value in production.
"""

import importlib
import json
import re
import secrets
import shlex
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
    assert services["web"]["environment"]["YOOKASSA_SANDBOX_PUBLIC_URL"] == "http://sandbox:8001"
    assert services["worker"]["environment"]["YOOKASSA_SANDBOX_PUBLIC_URL"] == "http://sandbox:8001"
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
        json.loads(arguments) for instruction, arguments in dockerfile_instructions() if instruction == "CMD"
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

    assert instructions[0] == ("FROM", "python:3.11-slim")
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
