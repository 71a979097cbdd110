# The images of the billing service, two targets of one build (see docker-compose.yml):
#   service  the production image: web (daphne, the default command), worker
#            (`python manage.py qcluster`) and the one-off migrations. It holds the service's own
#            packages and nothing else: no sandbox/, tests/, bench/ or frontend_examples/, and
#            config.settings.production never lists the sandbox app.
#   sandbox  the service image plus sandbox/ (the YooKassa emulator), run by compose's `sandbox`
#            profile with config.settings.sandbox (production + the emulator) and `manage.py runsandbox`.
# The service stage copies an allow-list, not `COPY . .` minus a .dockerignore: whatever is added
# to the repository stays out of production until it is named here (tests/config/test_docker_compose.py
# checks that every package pyproject.toml installs, but sandbox, is).
FROM python:3.11-slim AS service

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production

# The service runs as an unprivileged user that owns nothing but /app/var.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /app --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, in their own layer, so a code change does not reinstall them. Only
# pyproject.toml (and the README it names) is in /tmp/project: installing it installs the
# [project] dependencies (no dev extras) and an otherwise empty cinema-billing distribution, so
# pyproject's package list (which names sandbox for the development install) puts nothing in the
# image. The code itself runs from /app, copied below: one copy, BASE_DIR=/app, so var/ and
# staticfiles/ land in /app, not in site-packages.
COPY pyproject.toml README.md* /tmp/project/
RUN pip install --no-cache-dir /tmp/project \
    && rm -rf /tmp/project

COPY manage.py ./
COPY config/ config/
COPY plans/ plans/
COPY billing/ billing/
COPY webhooks/ webhooks/
COPY mail/ mail/
COPY deliveries/ deliveries/
COPY graphql_api/ graphql_api/
COPY internal_api/ internal_api/
COPY admin_access/ admin_access/

# collectstatic needs settings that pass validate(): throwaway keys that live only in this step
# (generated here, so neither the Dockerfile nor the image history holds them) and the sandbox, as
# there are no YooKassa credentials at build time. It needs no database and calls nothing. The
# files stay owned by root: the service only reads them.
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    JWT_SECRET="$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
    YOOKASSA_SANDBOX=true \
        python manage.py collectstatic --noinput \
    && mkdir -p var \
    && chown app:app var

USER app

EXPOSE 8000

# The same flags as docker-compose.yml's web and Procfile.local: no Server banner, a 60 s HTTP timeout.
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--no-server-name", "--http-timeout", "60", "config.asgi:application"]

# The YooKassa emulator for compose's `sandbox` profile: never deployed as the service. Its pages
# are plain-Python templates of its own and it serves no Django static files, so the service's
# collected static files are all it needs. It still refuses to start beside real credentials.
FROM service AS sandbox

COPY sandbox/ sandbox/

ENV DJANGO_SETTINGS_MODULE=config.settings.sandbox

EXPOSE 8001

CMD ["python", "manage.py", "runsandbox", "--host", "0.0.0.0", "--port", "8001"]
