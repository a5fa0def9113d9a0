# syntax=docker/dockerfile:1
# driftmon image: `docker build -t driftmon .` then `docker run driftmon run --config FILE`.
#
# Two stages. `build` installs the project and its dependencies into /opt/venv (wheels
# only: nothing here needs a compiler) and compiles every numba kernel into
# /opt/driftmon/numba-cache. The runtime stage copies both onto the same slim base, at
# the same paths (numba keys its cache by source path and content), and runs as a
# numeric non-root user. No build tools, no pip cache, no shell profile in the result.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    # A generic x86-64/aarch64 target, so the cache built on the CI runner loads on any
    # node's CPU (numba keys cache entries by CPU name and features).
    NUMBA_CPU_NAME=generic \
    NUMBA_CACHE_DIR=/opt/driftmon/numba-cache
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, so a source change does not reinstall them.
COPY pyproject.toml README.md ./
COPY monitor/__init__.py monitor/__init__.py
RUN pip install . && pip uninstall -y driftmon
COPY monitor monitor
RUN pip install --no-deps . \
    && python -m compileall -q /opt/venv/lib
COPY deploy/docker/warm_kernels.py /tmp/warm_kernels.py
RUN cd / && python /tmp/warm_kernels.py \
    && chmod -R a+rX /opt/driftmon/numba-cache

FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
LABEL org.opencontainers.image.title="driftmon" \
      org.opencontainers.image.description="Streaming drift and data-quality monitor for ML models" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    NUMBA_CPU_NAME=generic \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    DRIFTMON_SECRETS_DIR=/run/secrets/driftmon
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/driftmon/numba-cache /opt/driftmon/numba-cache
# Example configuration and baseline: the default `config/driftmon.yaml` resolves here.
COPY config /opt/driftmon/config
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/driftmon-entrypoint
WORKDIR /opt/driftmon
USER ${UID}:${UID}
EXPOSE 9475
ENTRYPOINT ["/usr/local/bin/driftmon-entrypoint"]
CMD ["run", "--config", "config/driftmon.yaml"]
