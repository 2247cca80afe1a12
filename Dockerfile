# posmon in a container: see deploy/README.md. Built from the repository root:
#   docker build -t posmon .            (or: docker compose up -d, with compose.yaml)
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A dedicated unprivileged user; the store's directory is the only place it writes.
RUN groupadd --system --gid 10001 posmon \
    && useradd --system --uid 10001 --gid posmon --home-dir /var/lib/posmon --no-create-home \
       --shell /usr/sbin/nologin posmon \
    && mkdir -p /var/lib/posmon \
    && chown posmon:posmon /var/lib/posmon

WORKDIR /opt/posmon
COPY pyproject.toml README.md ./
COPY posmon ./posmon
# Lighter's signer ships inside lighter-sdk, installed without its client dependencies as the Makefile does
# (build with --build-arg LIGHTER_SDK_VERSION= to leave it out when only Aster is traded).
ARG LIGHTER_SDK_VERSION=1.1.8
RUN pip install --no-cache-dir . \
    && if [ -n "$LIGHTER_SDK_VERSION" ]; then \
         pip install --no-cache-dir --no-deps "lighter-sdk==${LIGHTER_SDK_VERSION}"; \
       fi
COPY deploy/docker/healthcheck.py /opt/posmon/healthcheck.py

# The packaged configuration (config.toml of the repository) applies; mount your own and set POSMON_CONFIG to
# change it. The API listens on every interface of the container, so it demands a token: pass POSMON_API_TOKEN
# at run time (never bake it into the image). POSMON_API_ALLOWED_HOSTS names the hosts remote clients use.
ENV POSMON_DAEMON_STORE=/var/lib/posmon/posmon.sqlite \
    POSMON_API_HOST=0.0.0.0 \
    POSMON_API_PORT=8787

VOLUME ["/var/lib/posmon"]
EXPOSE 8787

USER posmon

# Healthy once posmon is ready: store open, venue reached, account reconciled, every position actor watching.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/opt/posmon/healthcheck.py"]

# posmon stops on SIGTERM at once and sends nothing on the way out; the next start picks up where it stopped.
STOPSIGNAL SIGTERM
ENTRYPOINT ["posmon"]
CMD ["run"]
