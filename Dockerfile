# syntax=docker/dockerfile:1
# One image for every process role: `epoa serve`, `epoa project`, `epoa consume`, `epoa db init`.
#
# Reproducible: the base is pinned by its index digest (python:3.11.16-slim-bookworm, as
# recorded by docker-library/repo-info on 2026-09-01; the tag is informative, the digest
# decides), and every Python package comes from requirements.lock, exact versions with
# their hashes (`make lock` regenerates it from pyproject.toml). Small: slim base, no
# compiler (every dependency ships a wheel), only the virtual environment is copied into
# the final stage. Safe by default: a non-root user and EPOA_ENV=production, which
# refuses development keys and the demo CA.
ARG PYTHON_IMAGE=python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/epoa
COPY requirements.lock ./
RUN /opt/epoa/bin/pip install --no-deps --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY projections ./projections
COPY api ./api
COPY consumers ./consumers
COPY epoa ./epoa
# The project itself, built with the base image's setuptools: no download, no unpinned
# build dependency.
RUN python -m pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /wheels . \
    && /opt/epoa/bin/pip install --no-deps --no-index /wheels/epoa-*.whl

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/epoa/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EPOA_ENV=production \
    EPOA_LOG_FORMAT=json
# /var/lib/epoa/witness: where docker-compose.yml mounts the witness volume; a new volume
# takes this directory's owner, so the non-root user can append to it.
RUN useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin epoa \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/epoa/witness
COPY --from=build /opt/epoa /opt/epoa
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["epoa"]
# Alone, the API runs its read models in-process; docker-compose.yml runs `epoa project` apart.
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
