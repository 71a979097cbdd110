"""Compose's `sandbox` service: the production settings plus the YooKassa emulator (sandbox/).

Run by `manage.py runsandbox` in the Dockerfile's `sandbox` stage, the only image with sandbox/ in
it; web, worker and migrate run config.settings.production, which never lists the app.
"""

from .base import validate
from .emulator import add_emulator
from .production import *  # noqa: F403

add_emulator(globals())
validate(globals())
