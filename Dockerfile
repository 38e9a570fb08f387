# syntax=docker/dockerfile:1
#
# The Wukong operator image: a multi-stage build whose result is a small
# distroless image (no shell, no package manager) holding one file, /wukong,
# run as the non-root user 65532.
#
# Build (BuildKit, the default builder of Docker 23+ and of `docker buildx`),
# from the repository root:
#
#   docker build -t ghcr.io/novasphere/wukong:0.1.0 .
#   docker push ghcr.io/novasphere/wukong:0.1.0
#
# For another registry, tag it there and point the manifests at it:
#   kustomize:  an `images:` entry (name ghcr.io/novasphere/wukong, newName, newTag)
#               in an overlay of config/default
#   Helm:       --set image.repository=registry.example.com/wukong --set image.tag=0.1.0
#
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 -t <image> --push .
# (each platform compiles natively under emulation; no cross toolchain needed).
#
# The image runs `wukong run` by default; `docker run --rm <image> crd` prints
# the CRD and `docker run --rm -i <image> render -f - < vm.yaml` renders offline.

# --- build -------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# Only what the build needs: the workspace manifests, the lock file and the
# sources of the crates. Cargo loads every workspace member, so the test and
# bench crates (fake-apiserver, bench) come along; only `wukong` is built, and
# neither of them is among its normal dependencies.
COPY Cargo.toml Cargo.lock ./
COPY models/Cargo.toml models/Cargo.toml
COPY models/src models/src
COPY fake-apiserver/Cargo.toml fake-apiserver/Cargo.toml
COPY fake-apiserver/src fake-apiserver/src
COPY bench/Cargo.toml bench/Cargo.toml
COPY bench/src bench/src
COPY src src

# The cargo registry and target directory are cache mounts, so a rebuild after
# a source change does not download or recompile the dependencies. The binary
# is copied out of the cache mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked -p wukong --bin wukong \
    && install -D -m 0755 target/release/wukong /out/wukong

# --- runtime -----------------------------------------------------------------
# glibc and libgcc (the binary links them dynamically), CA certificates, no
# shell and no package manager; the :nonroot tag runs as 65532:65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/wukong /wukong
USER 65532:65532
# /metrics, /healthz and /readyz.
EXPOSE 8080
ENTRYPOINT ["/wukong"]
CMD ["run"]
