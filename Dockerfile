# Conveyor's container image: built in the Rust image, run from a small Debian one as a
# non-root user. `docker build -t conveyor .`; the image runs `conveyor controller`.

# Build stage: the toolchain and the C pieces libgit2/libssh2 are built with.
FROM rust:1.89-bookworm AS build
WORKDIR /src
# The manifest and lock first, so dependency downloads are cached apart from source changes.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin conveyor \
 && strip target/release/conveyor

# Engines stage: the release binaries of kubectl (kustomize v5.5 built in, for `kubectl
# kustomize`) and Helm, pinned and checked against their published SHA-256 before use. Releases
# whose source is a kustomization or a chart are rendered with them when packaged. linux/amd64.
FROM debian:bookworm-slim AS engines
ARG KUBECTL_VERSION=v1.32.3
ARG KUBECTL_SHA256=ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f
ARG HELM_VERSION=v3.17.2
ARG HELM_SHA256=90c28792a1eb5fb0b50028e39ebf826531ebfcf73f599050dbd79bab2f277241
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /engines
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN curl -fsSLo kubectl "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/amd64/kubectl" \
 && echo "${KUBECTL_SHA256}  kubectl" | sha256sum -c - \
 && curl -fsSLo helm.tar.gz "https://get.helm.sh/helm-${HELM_VERSION}-linux-amd64.tar.gz" \
 && echo "${HELM_SHA256}  helm.tar.gz" | sha256sum -c - \
 && tar -xzf helm.tar.gz --strip-components=1 linux-amd64/helm \
 && rm helm.tar.gz \
 && chmod 0755 kubectl helm

# Runtime stage: libssl for git over https, CA certificates, the binary and the engines.
FROM debian:bookworm-slim
# Pinning exact Debian versions would break the build at every security update of the suite;
# the suite (bookworm) is the pin.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/conveyor /usr/local/bin/conveyor
# Found on PATH by the defaults of the config keys kustomize_binary and helm_binary.
COPY --from=engines /engines/kubectl /engines/helm /usr/local/bin/
COPY config/conveyor.yaml /etc/conveyor/conveyor.yaml
# A numeric non-root user (runAsNonRoot can verify it); the artifact store is a volume the
# chart mounts, writable by this user.
USER 65532:65532
ENV CONVEYOR_CONFIG=/etc/conveyor/conveyor.yaml
VOLUME ["/var/lib/conveyor"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/conveyor"]
CMD ["controller"]
