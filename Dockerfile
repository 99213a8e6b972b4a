# syntax=docker/dockerfile:1
# The hub (and the agent, for the compose demo) as a small non-root image.
# Build: docker build -t monitor .   Run: see compose.yaml and docs/operations.md.

ARG PYTHON_IMAGE=python:3.12.11-slim-bookworm

# ---- builder: turn the source tree into wheels (ours and every dependency) ----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protocol ./protocol
COPY monitor_server ./monitor_server
COPY monitor_agent ./monitor_agent
# pip builds our wheel in an isolated environment (setuptools from pyproject's build-system),
# then fetches wheels of every runtime dependency, the hub's extra included, so the final stage
# installs offline.
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[hub]'

# ---- runtime: install the built wheel, not the source tree ----
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="monitor" \
      org.opencontainers.image.description="Fleet monitoring hub and agent" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    MONITOR_HOST=0.0.0.0 \
    MONITOR_PORT=8000 \
    MONITOR_DB=/data/monitor.db \
    MONITOR_DATA_DIR=/data
# A fixed uid/gid so a bind-mounted /data can be chowned to match (chown 10001:10001 ./data).
RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid monitor --home-dir /data --no-create-home \
            --shell /usr/sbin/nologin monitor \
 && mkdir /data \
 && chown monitor:monitor /data
# The wheels are bind-mounted from the builder for this one step, so they never land in a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels "$(find /wheels -name 'monitor-*.whl')[hub]"
# Numeric, so Kubernetes' runAsNonRoot can check it without an /etc/passwd lookup.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# Plain HTTP unless MONITOR_TLS_CERT is set; the certificate is for the public name, not 127.0.0.1,
# so this local probe does not verify it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request as u; tls = bool(os.environ.get('MONITOR_TLS_CERT')); url = ('https' if tls else 'http') + '://127.0.0.1:' + os.environ.get('MONITOR_PORT', '8000') + '/health'; u.urlopen(url, timeout=4, context=ssl._create_unverified_context() if tls else None)"]
CMD ["monitor-server"]
