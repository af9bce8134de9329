# expertserve container image, built from Debian 12 packages only.
# UNTESTED: Docker is not available in the development environment; the
# commands are the ones the build uses (scripts/install_deps.sh, CMake +
# Ninja) and the runtime package names are Debian 12's.
#
#   docker build -t expertserve .
#   docker run -p 50051:50051 -p 9090:9090 -v /path/to/models:/models:ro \
#     expertserve --model chat=/models/chat --host 0.0.0.0 --port 50051 --metrics-port 9090

# ---- build -------------------------------------------------------------------
FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY scripts/install_deps.sh scripts/install_deps.sh
RUN apt-get update && bash scripts/install_deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DEXPERTSERVE_CUDA=OFF \
      -DEXPERTSERVE_BUILD_TESTS=OFF -DEXPERTSERVE_BUILD_BENCH=OFF \
 && ninja -C build expertserve expertserve-cli expertserve-mkmodel

# ---- runtime -----------------------------------------------------------------
FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libprometheus-cpp-pull1.0 \
      libprometheus-cpp-core1.0 libyaml-cpp0.7 libdnnl2 libpcre2-8-0 \
      libabsl20220623 libhwy1 libicu72 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin expertserve
COPY --from=build /src/build/bin/expertserve /src/build/bin/expertserve-cli \
                  /src/build/bin/expertserve-mkmodel /usr/local/bin/
COPY configs/ /etc/expertserve/examples/
USER 10001
EXPOSE 50051 9090
# SIGTERM drains gracefully (server.shutdown_grace_period); exit code 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/expertserve"]
CMD ["--help"]
