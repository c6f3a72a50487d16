# athkit gateway image: slim, non-root, health-checked on /readyz.
# Build:  docker build -t athkit-gateway .      Run: see compose.yaml and docs/deploy.md.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --upgrade pip build \
 && python -m build --wheel --outdir /wheels . \
 && pip wheel --no-cache-dir --wheel-dir /wheels "$(ls /wheels/athkit-*.whl)[server,postgres,redis,otlp]"

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --system --uid 10001 --home-dir /var/lib/athkit --create-home athkit
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels "athkit[server,postgres,redis,otlp]" && rm -rf /wheels
USER athkit
WORKDIR /var/lib/athkit
EXPOSE 8080
# /readyz answers 200 once the database (and Redis, when configured) answer.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2).status == 200 else 1)"]
CMD ["athkit", "gateway", "serve", "--config", "/etc/athkit/gateway.toml", "--host", "0.0.0.0", "--port", "8080"]
