# A small, non-root image of the service; the same image runs every process role.
FROM python:3.11.7-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY projections ./projections
COPY api ./api
COPY consumers ./consumers
COPY epoa ./epoa
RUN pip install --no-compile . \
    && useradd --system --uid 10001 --home-dir /app epoa
USER 10001
EXPOSE 8000
ENTRYPOINT ["epoa"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
