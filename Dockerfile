# syntax=docker/dockerfile:1
# Build wheels in one stage, install them into a slim image in the next.
#
# The base image is pinned to an exact Python release and Debian release, so that a rebuild
# gets the same interpreter; raise it on purpose (and run `cde-bot check` in the new image).
ARG PYTHON_IMAGE=python:3.11.17-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# Dependencies first, from pyproject.toml alone: a change to bot/ reuses this layer.
COPY pyproject.toml ./
# The image serves one replica on SQLite or several on PostgreSQL: the postgres extra is in.
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres']))" \
        > requirements.txt \
    && pip wheel --no-cache-dir --wheel-dir /wheels/deps -r requirements.txt
COPY README.md ./
COPY bot ./bot
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels/app .

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=3000 \
    DATABASE_URL=sqlite+aiosqlite:////data/cde-bot.db
RUN useradd --system --uid 10001 --home-dir /data --create-home cdebot
# The same split: the dependencies' layer stays cached while only the bot changes.
COPY --from=build /wheels/deps /wheels/deps
RUN pip install --no-index /wheels/deps/*.whl && rm -rf /wheels/deps
COPY --from=build /wheels/app /wheels/app
RUN pip install --no-index --no-deps /wheels/app/*.whl && rm -rf /wheels/app
USER cdebot
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '3000')}/healthz\", timeout=4)"]
# Shutdown drains answers and a poll under way for up to 25 s: run with --stop-timeout 30.
STOPSIGNAL SIGTERM
ENTRYPOINT ["cde-bot"]
CMD ["serve"]
