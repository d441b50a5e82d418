# syntax=docker/dockerfile:1.7
#
# One image for the three binaries (/usr/local/bin/{scorer,producer,trainer}).
# Why one image: they share one workspace, one dependency graph (rdkafka + the bundled
# librdkafka dominate the build) and one runtime (glibc, libssl3, zlib). A single
# `cargo build` compiles the shared crates once, the image is pulled once per node, and a
# release is one tag, so producer, trainer and scorer can never disagree on the Avro
# contract. The price is ~10 MiB of binaries a scorer pod does not run.
#
#   docker build -t heart-risk:dev .
#   docker run --rm heart-risk:dev scorer --help
#
# The HEALTHCHECK probes the scorer's sidecar; compose disables it for producer and trainer.
#
# The binaries in the image are stripped (~47 MB instead of 385 MB); their symbol tables and
# line tables go to <binary>.debug files, linked by .gnu_debuglink:
#   docker build --target debug-symbols --output type=local,dest=debug-symbols .
# (docs/deploy.md, "The image": sizes, and how to get file:line backtraces from them).
#
# BINARIES=prebuilt builds the runtime stage from binaries built and split outside, with
# the build context a directory holding scorer, producer and trainer (scripts/image).

ARG RUST_VERSION=1.95
ARG DEBIAN_SUITE=bookworm
ARG BINARIES=builder

# ---------------------------------------------------------------- build
FROM rust:${RUST_VERSION}-slim-${DEBIAN_SUITE} AS builder

# rdkafka builds the bundled librdkafka with its configure script (make, perl, python3)
# against the system OpenSSL and zlib.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc g++ make cmake pkg-config perl python3 libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# Registry, git checkouts and target/ live in BuildKit cache mounts, so a rebuild after a
# source change only recompiles the workspace crates. The binaries are copied out inside
# the same RUN because the cache mount is not part of the layer. Then the symbols and DWARF
# line tables move to /out/<binary>.debug (zlib-compressed) and each binary keeps a
# .gnu_debuglink to its file: scripts/image splits its prebuilt binaries the same way.
RUN --mount=type=cache,id=heart-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=heart-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=heart-target,target=/src/target \
    cargo build --release --locked -p heart-scorer -p heart-producer -p heart-trainer \
 && mkdir -p /out \
 && cp target/release/scorer target/release/producer target/release/trainer /out/ \
 && for bin in /out/scorer /out/producer /out/trainer; do \
      objcopy --only-keep-debug --compress-debug-sections=zlib "$bin" "$bin.debug" \
      && objcopy --strip-all --add-gnu-debuglink="$bin.debug" "$bin" || exit 1; \
    done

# ---------------------------------------------------------------- debug symbols
# Not part of the image; exported next to it (see the top of this file).
FROM scratch AS debug-symbols
COPY --from=builder /out/scorer.debug /out/producer.debug /out/trainer.debug /

# ---------------------------------------------------------------- prebuilt
# BINARIES=prebuilt: the context holds the three split binaries (never used otherwise).
FROM scratch AS prebuilt
COPY scorer producer trainer /out/

FROM ${BINARIES} AS binaries

# ---------------------------------------------------------------- runtime
# debian-slim rather than distroless: the trainer needs fonts for its plots and the
# compose trainer runs `fetch-data && train` through sh. Same suite as the builder, so
# the glibc and libssl the binaries were linked against are the ones present here.
FROM debian:${DEBIAN_SUITE}-slim AS runtime

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 heart \
 && useradd --system --uid 10001 --gid heart --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin heart

COPY --from=binaries /out/scorer /out/producer /out/trainer /usr/local/bin/

# Numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp

ENV SCORER_HTTP_ADDR=0.0.0.0:8080 \
    LOG_FORMAT=json \
    RUST_LOG=info
EXPOSE 8080

# `scorer healthcheck` GETs /healthz on SCORER_HTTP_ADDR and exits 0 on 200: no curl needed.
# It reads the scorer's environment, so it speaks TLS and sends a token when those are on.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/scorer", "healthcheck"]

# SIGTERM starts the scorer's drain (bounded by SCORER_DRAIN_TIMEOUT_MS).
STOPSIGNAL SIGTERM
CMD ["scorer"]
