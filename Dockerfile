# syntax=docker/dockerfile:1
# The healthstack service image. Contract (docs/CONTRACT.md): UID/GID 10001, port 4000, command
# `healthstack serve`, read-only root filesystem with a writable /tmp.

# Stage 1: build the wheel and install it with its dependencies into a self-contained venv.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/healthstack \
 && /opt/healthstack/bin/pip install /wheels/*.whl \
 && /opt/healthstack/bin/pip uninstall --yes pip \
 && find /opt/healthstack -name '__pycache__' -prune -exec rm -rf {} +

# Stage 2: the runtime, with no compiler, no pip in the venv, no source tree and no root user.
FROM python:3.11-slim
RUN groupadd --system --gid 10001 healthstack \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin healthstack
# The venv's interpreter links to this image's /usr/local/bin/python3.11, identical in both stages.
COPY --from=build /opt/healthstack /opt/healthstack
# Bytecode is never written (the root filesystem is read-only); HOME and TMPDIR point at the
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
