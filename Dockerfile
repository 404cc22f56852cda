# syntax=docker/dockerfile:1
# syncer controller image: `docker build -t syncer .` (docs/running-in-the-cluster.md, "Container image").
#
# Two stages: the first downloads the locked runtime dependencies (requirements/runtime.txt,
# every file checked against its sha256) and builds syncer's own wheel with the locked build
# backend (requirements/build.txt); the second installs exactly those files, hash-checked
# again and without an index, into a clean interpreter with git, openssh-client and gpg,
# and runs as an unprivileged user. No test tool and no
# unpinned package enters the image.
# Network: PyPI and Debian's package mirrors only.
#
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements/runtime.txt requirements/build.txt ./requirements/
RUN pip download --require-hashes --no-deps --dest /wheels -r requirements/runtime.txt \
    && pip install --require-hashes --no-deps -r requirements/build.txt
COPY pyproject.toml README.md LICENSE ./
COPY syncer ./syncer
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels/syncer .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="syncer" \
      org.opencontainers.image.description="GitOps for the Windows nodes of Kubernetes/OpenShift clusters" \
      org.opencontainers.image.licenses="Apache-2.0"
# git (GitPython runs it), openssh-client (ssh:// remotes; ssh-keygen verifies SSH commit
# signatures), gpg (GPG commit signatures, `syncer run --verify`) and nss_wrapper (a passwd
# entry for the arbitrary UID of OpenShift's restricted-v2, which ssh needs:
# syncer/controller/runtimeuser.py).
# Debian's versions of git and ssh track the base image's security updates; pinning exact
# package versions would break the build at every point release (hadolint DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client gpg ca-certificates \
       libnss-wrapper \
    && rm -rf /var/lib/apt/lists/*
# The wheelhouse holds exactly the locked files; --require-hashes checks each one again.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,source=requirements/runtime.txt,target=/tmp/runtime.txt \
    pip install --no-cache-dir --no-index --find-links /wheels --require-hashes --no-deps \
        -r /tmp/runtime.txt \
    && pip install --no-cache-dir --no-index --no-deps /wheels/syncer/syncer-*.whl \
    && groupadd --gid 65532 syncer \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /var/lib/syncer \
       --shell /usr/sbin/nologin syncer
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/syncer \
    SYNCER_WORKDIR=/var/lib/syncer
WORKDIR /var/lib/syncer
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["syncer"]
CMD ["run"]
