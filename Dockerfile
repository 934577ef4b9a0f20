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

# Runtime stage: libssl for git over https, CA certificates, the binary; nothing else.
FROM debian:bookworm-slim
# Pinning exact Debian versions would break the build at every security update of the suite;
# the suite (bookworm) is the pin.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/conveyor /usr/local/bin/conveyor
COPY config/conveyor.yaml /etc/conveyor/conveyor.yaml
# A numeric non-root user (runAsNonRoot can verify it); the artifact store is a volume the
# chart mounts, writable by this user.
USER 65532:65532
ENV CONVEYOR_CONFIG=/etc/conveyor/conveyor.yaml
VOLUME ["/var/lib/conveyor"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/conveyor"]
CMD ["controller"]
