# The production image of the billing service. One image, four roles (see docker-compose.yml):
# web (daphne, the default command), worker (`python manage.py qcluster`), one-off migrations,
# and the YooKassa sandbox (`python manage.py runsandbox`).
FROM python:3.11-slim

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
# [project] dependencies (no dev extras) and an otherwise empty cinema-billing distribution. The
# code itself runs from /app, copied below: one copy, BASE_DIR=/app, so var/ and staticfiles/ land
# in /app, not in site-packages.
COPY pyproject.toml README.md* /tmp/project/
RUN pip install --no-cache-dir /tmp/project \
    && rm -rf /tmp/project

COPY . .

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
