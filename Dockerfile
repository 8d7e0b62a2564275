# syntax=docker/dockerfile:1
#
# sales-order-operator image: a static binary on distroless/static, run as
# the numeric non-root user 65532. Build (from the repository root):
#
#   docker build -t <registry>/sales-order-operator:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#
# Why static musl + distroless/static rather than glibc + distroless/cc:
# the operator's only C dependencies are ring and jemalloc (both built by
# their crates' build scripts, with musl-gcc and make) and it uses rustls,
# not OpenSSL, so a fully static binary costs nothing; the final image then
# holds no libc at all (nothing for a CVE scanner to flag, no glibc version
# coupling between build and run image), and the same binary also runs on
# scratch. jemalloc replaces musl's allocator (slower, and larger for many
# small strings); its options come from .cargo/config.toml, which the
# build context keeps.
# tests/it/dockerfile.rs checks the invariants of this file.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools make \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
# Stamped into sales_order_operator_build_info{revision} at compile time
# (src/metrics.rs); empty (the default) leaves the label out.
ARG REVISION=""
ENV SALES_ORDER_OPERATOR_REVISION=${REVISION}
# The whole workspace: cargo must load every member's manifest (emulator,
# testkit) to honour Cargo.lock, even though only the operator is built.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --bin sales-order-operator --target x86_64-unknown-linux-musl

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="sales-order-operator" \
      org.opencontainers.image.description="GitOps for Dynamics 365 F&O sales-order status (Kubernetes operator)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/sales-order-operator /sales-order-operator
# Numeric, so the kubelet can verify runAsNonRoot without /etc/passwd.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/sales-order-operator"]
CMD ["run"]
