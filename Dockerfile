# The daemon in a container: `docker build -t aggregator .`, then
#   docker run -d --name aggregator \
#     -v "$PWD/articles:/srv/aggregator/articles:ro" -v aggregator-feeds:/srv/aggregator/feeds \
#     -v aggregator-state:/srv/aggregator/.aggregator aggregator run --base-url https://feeds.example.org/
# See README.md, "In a container".
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Fewer malloc arenas: a lower, flatter RSS over many builds (as deploy/ does).
    MALLOC_ARENA_MAX=2

RUN useradd --system --uid 10001 --home-dir /srv/aggregator --shell /usr/sbin/nologin aggregator

WORKDIR /opt/aggregator
# The locked versions first (a layer that survives code changes), then the project alone.
# Only the runtime part of the lock is installed: it also pins the test and lint tools,
# which the image does not need; `-c` keeps every runtime library at its locked version.
COPY requirements.lock pyproject.toml README.md ./
COPY aggregator ./aggregator
RUN pip install --constraint requirements.lock . \
    && aggregator --version

# The daemon's folder: ./aggregator.yaml (every key, commented; read by default from the
# working folder), articles/ (input), feeds/ (output), .aggregator/ (catalog and lock).
WORKDIR /srv/aggregator
RUN aggregator init /srv/aggregator \
    && rm /srv/aggregator/articles/welcome.md \
    && mkdir /srv/aggregator/.aggregator \
    && chown -R aggregator:aggregator /srv/aggregator
USER aggregator
VOLUME ["/srv/aggregator/articles", "/srv/aggregator/feeds", "/srv/aggregator/.aggregator"]

# Healthy while a daemon holds the state folder's lock and the catalog opens.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["aggregator", "health"]

# SIGTERM (docker stop) stops the daemon cleanly within 5 s; it runs as PID 1 and handles it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["aggregator"]
CMD ["run"]
