# One image for both Firebox services. The command picks the service:
#   docker run firebox executor --listen 0.0.0.0:50051 --config-dir /var/lib/firebox/executor ...
#   docker run firebox agent    --listen 0.0.0.0:50052 --executor executor:50051 ...
#   docker run firebox firebox status ...          (the CLI)
#   docker run firebox healthcheck HOST:PORT       (exit 0 when the gRPC health service says SERVING)
#   docker run firebox docker-proxy --listen 0.0.0.0:2375   (compose.socket-proxy.yaml)
#
# BASE_IMAGE: any image with python3 (>= 3.11) and its venv module. The default is the official
# slim image; where no registry is reachable, make one with scripts/build-base-image.sh and pass
# --build-arg BASE_IMAGE=firebox-base:bookworm.
#
# Dependencies: when build/wheels/ holds wheels (scripts/build-service-image.sh makes them on the
# host with `pip wheel`), the install uses only those — no network during the build. Otherwise
# pip installs from the build context and PyPI.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS install
COPY . /src
RUN python3 -m venv /opt/firebox \
 && if ls /src/build/wheels/firebox-*.whl >/dev/null 2>&1; then \
      /opt/firebox/bin/pip install --no-cache-dir --no-index --find-links /src/build/wheels firebox; \
    else \
      /opt/firebox/bin/pip install --no-cache-dir /src; \
    fi \
 && /opt/firebox/bin/python -c "import firebox.common.server, grpc; print('grpcio', grpc.__version__)"

FROM ${BASE_IMAGE}
COPY --from=install /opt/firebox /opt/firebox
COPY deploy/entrypoint.sh /usr/local/bin/firebox-entrypoint
# The services run as this user, except the executor with the Docker socket mounted, which runs
# as root to open it (docs/deploy.md). /var/lib/firebox holds config and logs (volumes).
RUN echo 'firebox:x:10001:10001:firebox:/var/lib/firebox:/usr/sbin/nologin' >>/etc/passwd \
 && echo 'firebox:x:10001:' >>/etc/group \
 && mkdir -p /var/lib/firebox/agent /var/lib/firebox/executor /etc/firebox/tls \
 && chown -R 10001:10001 /var/lib/firebox \
 && chmod 0755 /usr/local/bin/firebox-entrypoint
ENV PATH=/opt/firebox/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/lib/firebox
EXPOSE 50051 50052
ENTRYPOINT ["/usr/local/bin/firebox-entrypoint"]
CMD ["help"]
