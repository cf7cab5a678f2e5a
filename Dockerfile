# financial-tracker-etl: the jobs, their cron schedule and the Kafka worker in one image.
#   docker build -t financial-tracker-etl .
#   docker run --env-file .env financial-tracker-etl                  # scheduler on ./crontab
#   docker run --env-file .env financial-tracker-etl etl fetch_market_data --symbols AAPL:STOCK
#   docker run --env-file .env financial-tracker-etl etl worker
# BASE_IMAGE lets a local Debian bookworm image with Python 3.11 stand in for the registry one.
ARG BASE_IMAGE=python:3.11.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY requirements.txt docker/requirements-scheduler.txt ./
RUN python3 -m venv /opt/etl \
    && python3 -m venv /opt/scheduler \
    && /opt/etl/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.txt \
    && /opt/scheduler/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements-scheduler.txt
COPY pyproject.toml README.md ./
COPY etl ./etl
RUN /opt/etl/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps . \
    && /opt/etl/bin/python -m compileall -q /opt/etl

FROM ${BASE_IMAGE}
RUN groupadd --system --gid 10001 etl \
    && useradd --system --create-home --home-dir /home/etl --uid 10001 --gid etl etl
ENV PATH=/opt/etl/bin:/opt/scheduler/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ETL_CRONTAB=/etc/etl/crontab \
    ETL_STATE_DIR=/tmp/etl
COPY --from=build /opt/etl /opt/etl
COPY --from=build /opt/scheduler /opt/scheduler
COPY docker/entrypoint.sh /usr/local/bin/entrypoint
COPY docker/scheduler.sh /usr/local/bin/scheduler
COPY docker/etl-cron.sh /usr/local/bin/etl-cron
COPY docker/healthcheck.sh /usr/local/bin/healthcheck
COPY docker/crontab_to_yacron.py docker/health.py /usr/local/lib/etl/
COPY crontab /etc/etl/crontab
USER 10001:10001
WORKDIR /home/etl
HEALTHCHECK --interval=60s --timeout=20s --start-period=60s --retries=3 CMD ["healthcheck"]
ENTRYPOINT ["entrypoint"]
CMD ["scheduler"]
