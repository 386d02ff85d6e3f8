# syntax=docker/dockerfile:1
# The healthstack service image. Contract (docs/CONTRACT.md): UID/GID 10001, port 4000, command
# `healthstack serve`, read-only root filesystem with a writable /tmp.

# The base image is pulled by digest only: the build passes the one it resolved for the tag
# (`--build-arg PYTHON_DIGEST=sha256:$(crane digest python:3.11-slim)`). There is no default on
# purpose: this repository is written where no container registry can be reached, so a digest
# written here could not be checked against the tag; without the argument the reference is
# `python:3.11-slim@`, which every builder refuses, so no build ever falls back to the moving tag.
# Both stages use the same digest.
ARG PYTHON_DIGEST

# Stage 1: build the wheel and install it, with only the runtime dependencies (hash-locked in
# requirements/runtime.lock: no kubernetes-validate, no embedded PostgreSQL), into a venv.
FROM python:3.11-slim@${PYTHON_DIGEST} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements/runtime.lock ./requirements/
COPY pyproject.toml README.md ./
COPY src ./src
# Bytecode is compiled here, checked by hash rather than by timestamp: the runtime's root
# filesystem is read-only, so it could never write it.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/healthstack \
 && /opt/healthstack/bin/pip install --require-hashes --no-deps -r requirements/runtime.lock \
 && /opt/healthstack/bin/pip install --no-deps /wheels/*.whl \
 && /opt/healthstack/bin/pip uninstall --yes pip \
 && python -m compileall -q --invalidation-mode unchecked-hash /opt/healthstack

# Stage 2: the runtime, with no compiler, no pip in the venv, no source tree and no root user.
FROM python:3.11-slim@${PYTHON_DIGEST}
LABEL org.opencontainers.image.title="healthstack" \
      org.opencontainers.image.description="HIPAA-grade FHIR R4 service" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/example/healthstack" \
      org.opencontainers.image.version="0.1.0"
RUN groupadd --system --gid 10001 healthstack \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin healthstack
# The venv's interpreter links to this image's /usr/local/bin/python3.11, identical in both stages.
COPY --from=build /opt/healthstack /opt/healthstack
# Bytecode is precompiled and never written (the root filesystem is read-only); HOME and TMPDIR point at the
# one writable mount.
ENV PATH=/opt/healthstack/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    HEALTHSTACK_ENV=production \
    PORT=4000
USER 10001:10001
WORKDIR /tmp
EXPOSE 4000
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '4000') + '/health', timeout=2)"]
CMD ["healthstack", "serve"]
