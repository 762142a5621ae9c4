# nerved: build on Debian bookworm, run on bookworm-slim with only the
# shared libraries the daemon needs, as the numeric non-root user 10001.
#
# podman and buildah write OCI images by default, which have no
# HEALTHCHECK: build with `--format docker` to keep it. Kubernetes ignores
# HEALTHCHECK either way; docker/k8s/ has its own probes.
FROM debian:bookworm-slim AS build
# Static, so every layer of both stages says whose it is (the image test
# prunes its own stale layers by it).
LABEL org.opencontainers.image.title="nerved"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libopenblas-dev libmicrohttpd-dev \
      libgnutls28-dev libcjson-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNERVED_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target nerved nerved-data \
 && cmake --install /build --prefix /opt/nerved --strip

FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="nerved"
# apt's caches go in the same layer: a base without Docker's clean hook
# would otherwise keep the downloaded packages (~90 MB). The user is
# numeric and pinned: runAsNonRoot can only verify a numeric user, and a
# UID that changed between rebuilds would lock the image out of its own
# 0600 files on an existing volume.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopenblas0-pthread libmicrohttpd12 libgnutls30 libcjson1 zlib1g \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old \
           /var/log/apt /var/log/dpkg.log \
 && groupadd --gid 10001 nerved \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/nerved \
      --no-create-home --no-log-init --shell /usr/sbin/nologin nerved \
 && mkdir -p /var/lib/nerved /usr/lib/nerved/plugins /etc/nerved/networks \
 && chown 10001:10001 /var/lib/nerved && chmod 0700 /var/lib/nerved
COPY --from=build /opt/nerved/bin/nerved /opt/nerved/bin/nerved-data /usr/bin/
COPY --from=build /opt/nerved/include/nerved /usr/include/nerved
# Configuration is by environment; every flag has a NERVED_* variable.
ENV NERVED_HOST=0.0.0.0 \
    NERVED_PORT=8080 \
    NERVED_THREADS=4 \
    NERVED_PLUGIN_DIR=/usr/lib/nerved/plugins \
    NERVED_DATA_DIR=/var/lib/nerved
VOLUME ["/var/lib/nerved"]
USER 10001:10001
EXPOSE 8080
# --probe reads the same NERVED_* variables (port, TLS) as the daemon.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/bin/nerved", "--probe"]
# Last, so a new revision rebuilds no layer but these.
ARG VERSION=0.1.0
ARG SOURCE=""
ARG REVISION=""
LABEL org.opencontainers.image.description="Neural node graphs over HTTP" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}"
ENTRYPOINT ["/usr/bin/nerved"]
