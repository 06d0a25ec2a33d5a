# syntax=docker/dockerfile:1.7
# One image for the four Herald services; pick one with the command:
#   docker run IMAGE herald-ingest          (or herald-matcher, herald-executor, herald-scheduler)
#   docker run IMAGE herald-ingest migrate  (apply the database migrations and exit)
# Herald's built-in listen addresses are loopback: inside a container set
# HERALD_HTTP__LISTEN=0.0.0.0:8080 (ingest) and HERALD_OPS__LISTEN=0.0.0.0:<ops port>, as
# deploy/compose.yaml and the Helm chart do, with HERALD_AMQP__URL and HERALD_DATABASE__URL.
# Build: docker build -t herald .

# The toolchain the workspace is built and tested with (its rust-version is the minimum).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# The registry, git checkouts and target/ are cache mounts: a rebuild after a source change
# recompiles Herald's crates only. target/ is not kept in the layer, so the binaries are
# copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
        --bin herald-ingest --bin herald-matcher --bin herald-executor --bin herald-scheduler \
    && mkdir -p /out \
    && cp target/release/herald-ingest target/release/herald-matcher \
          target/release/herald-executor target/release/herald-scheduler /out/

# glibc, libgcc and CA certificates, no shell and no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="herald" \
      org.opencontainers.image.description="Herald: event actions over RabbitMQ (ingest, matcher, executor, scheduler)" \
      org.opencontainers.image.source="https://github.com/herald-events/herald" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/herald-ingest /out/herald-matcher /out/herald-executor /out/herald-scheduler /usr/local/bin/
# 65532 is distroless's "nonroot"; numeric so that runAsNonRoot can verify it.
USER 65532:65532
# 8080: ingest's API; 9090-9093: /healthz, /readyz, /metrics of ingest, matcher, executor,
# scheduler (each service's default ops port, set with HERALD_OPS__LISTEN).
EXPOSE 8080 9090 9091 9092 9093
CMD ["herald-ingest"]
