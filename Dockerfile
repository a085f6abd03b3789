# The Enclave portal: `python -m portal` (uvicorn) on port 8000 as a non-root user.
# Configure with environment variables (see .env.example); DJANGO_SECRET_KEY and
# PORTAL_ENCRYPTION_KEYS are required. Agents run next to the workspaces, not in this image.
FROM node:20-slim AS static
WORKDIR /src
COPY package.json package-lock.json ./
COPY bin/build-static.mjs bin/
RUN npm ci --no-audit --no-fund && npm run build

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PORTAL_VAR_DIR=/var/lib/enclave STATIC_ROOT=/app/staticfiles
WORKDIR /app
COPY requirements/ requirements/
RUN pip install -r requirements/base.txt -r requirements/agent.txt
COPY . .
COPY --from=static /src/static/vendor static/vendor
# Build-time placeholders only: the image never carries real keys.
RUN DJANGO_SECRET_KEY=collectstatic-only PORTAL_VAR_DIR=/tmp/build \
    PORTAL_ENCRYPTION_KEYS=k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
    python manage.py collectstatic --noinput \
    && rm -rf /tmp/build \
    && useradd --system --uid 10001 --home-dir /var/lib/enclave --create-home enclave
USER enclave
EXPOSE 8000
CMD ["python", "-m", "portal", "--host", "0.0.0.0", "--port", "8000"]
