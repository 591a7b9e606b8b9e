# The exhaust image: both binaries (`exhaust`, `exhaust-server`) built with
# every output format and cloud store (the `full` feature), on Debian slim,
# run as a non-root user, working with a read-only root file system.
#
#   scripts/image        builds it with buildah or podman and tests it (here
#                        the base images are made from Debian packages when
#                        no registry answers; see the script)
#   docker build --build-arg GIT_HASH=$(git rev-parse --short=12 HEAD) -t exhaust .
#
# Running it: the default command is the server on 0.0.0.0:8080 with the
# settings of README "Configuration" (`EXHAUST_*` variables or a TOML file
# named by `EXHAUST_CONFIG`); `--worker` makes it process requests too, and
# `exhaust ...` runs the command-line tool instead. With a read-only root,
# mount a writable /tmp (podman --read-only does; docker needs `--tmpfs
# /tmp`; Kubernetes an emptyDir, see deploy/kubernetes/), and a volume at
# /var/lib/exhaust when the SQLite store or a local folder is used there.

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# The commit for `--version` and `exhaust_build_info` (the build context
# has no .git).
ARG GIT_HASH=unknown
WORKDIR /src
COPY . .
# The registry and the target folder are cache mounts: a rebuild after a
# code change compiles the workspace's crates, not every dependency. Behind
# a TLS-inspecting proxy, pass its CA bundle as the build secret `cacert`
# (`--secret id=cacert,src=/etc/ssl/certs/ca-certificates.crt`); cargo then
# trusts it for crates.io.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    --mount=type=secret,id=cacert,required=false \
    if [ -s /run/secrets/cacert ]; then export CARGO_HTTP_CAINFO=/run/secrets/cacert; fi \
 && EXHAUST_GIT_HASH="$GIT_HASH" cargo build --locked --profile dist \
        -p exhaust-cli -p exhaust-server \
        --features exhaust-cli/full,exhaust-server/full \
 && install -D -m 0755 -t /out target/dist/exhaust target/dist/exhaust-server

FROM ${RUNTIME_IMAGE}
ARG GIT_HASH=unknown
LABEL org.opencontainers.image.title="exhaust" \
      org.opencontainers.image.description="Sunbird's progress exhaust: the per-batch course progress report, as a CLI and an HTTP service" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.revision="${GIT_HASH}"
# CA certificates for TLS to blob stores, PostgreSQL, Cassandra and Redis;
# nothing else: the binaries link only glibc.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 exhaust \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/exhaust \
        --no-create-home --shell /usr/sbin/nologin exhaust \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/exhaust
COPY --from=build /out/exhaust /out/exhaust-server /usr/local/bin/
COPY LICENSE /usr/share/doc/exhaust/LICENSE

# Listen on every interface (the binary's default is loopback only), and
# keep the embedded sample snapshot's copy under /tmp, the one place a
# read-only root leaves writable.
ENV EXHAUST_SERVER_BIND=0.0.0.0:8080 \
    XDG_CACHE_HOME=/tmp/cache \
    HOME=/var/lib/exhaust
WORKDIR /var/lib/exhaust
USER 10001:10001
EXPOSE 8080
CMD ["exhaust-server"]
