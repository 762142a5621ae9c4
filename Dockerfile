# nerved: build on Debian bookworm, run on bookworm-slim with only the
# shared libraries the daemon needs, as a non-root user.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libopenblas-dev libarpack2-dev libmicrohttpd-dev \
      libcjson-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNERVED_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target nerved nerved-data \
 && cmake --install /build --prefix /opt/nerved --strip

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopenblas0-pthread libarpack2 libmicrohttpd12 libcjson1 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/nerved --shell /usr/sbin/nologin nerved \
 && mkdir -p /var/lib/nerved /usr/lib/nerved/plugins /etc/nerved/networks \
 && chown nerved /var/lib/nerved
COPY --from=build /opt/nerved/bin/nerved /opt/nerved/bin/nerved-data /usr/bin/
COPY --from=build /opt/nerved/include/nerved /usr/include/nerved
# Configuration is by environment; every flag has a NERVED_* variable.
# NERVED_BLAS_CORE=auto (the default) picks OpenBLAS's fast kernels on CPUs
# it does not recognise, as in most VMs; do not set OPENBLAS_CORETYPE here
# (a user's value is kept as it is). keep: OpenBLAS's own choice.
ENV NERVED_HOST=0.0.0.0 \
    NERVED_BLAS_CORE=auto \
    NERVED_PORT=8080 \
    NERVED_THREADS=4 \
    NERVED_PLUGIN_DIR=/usr/lib/nerved/plugins \
    NERVED_DATA_DIR=/var/lib/nerved
VOLUME ["/var/lib/nerved"]
USER nerved
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/bin/nerved"]
