# cloudsync: one image for web (gunicorn), worker, beat and flower.
#   docker build -t cloudsync .
#   docker compose up        (see docker-compose.yml)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=project.settings \
    STATIC_ROOT=/app/var/static

WORKDIR /app

# An unprivileged user owns nothing in the image; it only runs it.
RUN groupadd --system --gid 10001 cloudsync \
 && useradd --system --uid 10001 --gid cloudsync --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin cloudsync

# Dependencies first so code changes do not reinstall them. Every pinned
# package ships a manylinux wheel (psycopg[binary], cryptography), so no
# compiler is needed.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .

# Static files (admin, DRF, Swagger) are collected at build time. The
# SECRET_KEY and database here are throwaway: settings need them to import,
# collectstatic touches neither.
RUN SECRET_KEY=collectstatic-build-only-not-a-secret \
    DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    python manage.py collectstatic --noinput \
 && rm -f /tmp/build.sqlite3 \
 && chmod 0755 docker/entrypoint.sh \
 && mkdir -p /app/var/metrics && chown cloudsync:cloudsync /app/var/metrics

USER cloudsync:cloudsync

EXPOSE 8000 5555

ENTRYPOINT ["/app/docker/entrypoint.sh"]
# No access log: webhook producers that cannot set headers put the secret in
# ?token=, and sync.endpoint already logs requests with it redacted.
CMD ["gunicorn", "project.wsgi:application", "-w", "3", "-b", "0.0.0.0:8000"]
