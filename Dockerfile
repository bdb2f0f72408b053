# syntax=docker/dockerfile:1
# The operator's image: one static binary on distroless, non-root. The stage
# Jobs run this same image with /usr/local/bin/sigstore-operator as their
# command (src/build/stages.rs, BINARY), so the path must not change.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t IMAGE .   (make image)
#   docker buildx build --load -t sigstore-operator:dev .               (make image-load)
#
# Multi-arch: the build stage runs natively per target platform (no
# --platform=$BUILDPLATFORM), so each platform builds its own
# <arch>-unknown-linux-musl target with Debian's musl-gcc for ring's C code;
# buildx runs the foreign one under QEMU (slower, but no cross toolchain).

# Pinned by tag; pin by digest (rust:1.95.0-slim-bookworm@sha256:...) where
# a registry is reachable to resolve it.
FROM rust:1.95.0-slim-bookworm AS build
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
RUN case "$TARGETARCH" in \
      amd64) echo x86_64-unknown-linux-musl ;; \
      arm64) echo aarch64-unknown-linux-musl ;; \
      *) echo "unsupported TARGETARCH: $TARGETARCH" >&2; exit 1 ;; \
    esac > /rust-target \
 && rustup target add "$(cat /rust-target)"
WORKDIR /src
# Only what the build reads (benches/ because Cargo.toml declares them).
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY benches benches
COPY src src
# musl targets link statically by default (crt-static); the binary is
# copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=sigstore-operator-target-${TARGETARCH} \
    target="$(cat /rust-target)" \
 && cargo build --locked --release --target "$target" \
 && install -D -m 0755 "target/$target/release/sigstore-operator" /out/sigstore-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sigstore-operator /usr/local/bin/sigstore-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sigstore-operator"]
CMD ["run"]
