# syntax=docker/dockerfile:1
#
# authsvc:          docker build -t authsvc .                      (the last stage)
# the HTTP gateway: docker build --target gateway -t authsvc-gateway .
#
# Installs exactly what scripts/bootstrap installs for `scripts/serve` (the
# README's path): the package's dependencies and its `server` extra, pinned by
# `pip install -c constraints.txt`. tests/rpc/test_packaging.py keeps the two in step.

ARG PYTHON_VERSION=3.11
ARG GO_VERSION=1.26

# --- authsvc: dependencies, then the package, into a virtual environment ---
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/authsvc
ENV PATH=/opt/authsvc/bin:$PATH
WORKDIR /src
# Dependencies first, from pyproject.toml and constraints.txt alone, so that a
# change to the source reuses this layer.
COPY pyproject.toml constraints.txt ./
RUN python -m pip install --upgrade pip \
 && python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["server"]))' > requirements.txt \
 && python -m pip install -c constraints.txt -r requirements.txt
COPY README.md ./
COPY authsvc ./authsvc
RUN python -m pip install -c constraints.txt --no-deps . \
 && python -m compileall -q /opt/authsvc

# --- the gateway: a static Go binary ---
FROM golang:${GO_VERSION} AS gateway-build
WORKDIR /src/gateway
COPY gateway/go.mod gateway/go.sum gateway/go.work gateway/go.work.sum ./
COPY gateway/verify/go.mod gateway/verify/go.sum ./verify/
RUN go mod download
COPY gateway/ ./
RUN CGO_ENABLED=0 go build -trimpath -o /out/gateway .

FROM gcr.io/distroless/static-debian12:nonroot AS gateway
COPY --from=gateway-build /out/gateway /usr/local/bin/gateway
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gateway", "--listen", "0.0.0.0:8080"]
CMD ["--upstream", "authsvc:50051"]

# --- authsvc: the runtime image (last, so it is the default target) ---
FROM python:${PYTHON_VERSION}-slim AS authsvc
ENV PATH=/opt/authsvc/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AUTHSVC_LISTEN=0.0.0.0:50051 \
    AUTHSVC_METRICS_LISTEN=0.0.0.0:9464 \
    AUTHSVC_DATA_DIR=/var/lib/authsvc
RUN useradd --system --uid 10001 --home-dir /var/lib/authsvc --create-home authsvc
COPY --from=build /opt/authsvc /opt/authsvc
COPY scripts/healthcheck /usr/local/bin/authsvc-healthcheck
USER 10001:10001
WORKDIR /var/lib/authsvc
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/bin/authsvc-healthcheck"]
# SIGTERM drains in-flight calls for AUTHSVC_SHUTDOWN_GRACE seconds (default 10):
# give `docker stop` / Kubernetes a longer timeout than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["authsvc", "serve"]
