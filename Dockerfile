# edgeguard in a container: build on Debian, run as an unprivileged user.
#   docker build -t edgeguard .
#   docker run -p 8080:8080 -v $PWD/rulebook:/etc/edgeguard edgeguard
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The profile-guided build (benches/pgo/build.sh): an instrumented build serves a
# short training run on the build's loopback, then the optimized build uses its
# profile: less CPU per request than `cargo build --release` (README, Performance).
RUN benches/pgo/build.sh && cp target/pgo/release/edgeguard /edgeguard && strip /edgeguard

FROM debian:bookworm-slim
# The system's roots, for https:// upstreams.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin edgeguard
COPY --from=build /edgeguard /usr/local/bin/edgeguard
# The shipped rulebook and what it names, as an example; mount your own over it.
COPY config/ /etc/edgeguard/
COPY demo/ /etc/demo/
COPY geoip/ /etc/geoip/
ENV EDGEGUARD_CONFIG=/etc/edgeguard/edgeguard.toml
USER edgeguard
EXPOSE 8080 8443
# The admin port stays on the container's loopback, where the probe runs.
HEALTHCHECK --interval=10s --timeout=5s --retries=3 CMD ["edgeguard", "health"]
ENTRYPOINT ["edgeguard"]
CMD ["run"]
