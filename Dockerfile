# One image for all three services; docker-compose.yml picks the process per service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HOST=0.0.0.0

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY common ./common
COPY memory_service ./memory_service
COPY cognition_service ./cognition_service
COPY core_app ./core_app
COPY scripts ./scripts
COPY gunicorn.conf.py Procfile ./

RUN useradd --create-home --uid 10001 cortex && mkdir -p /data /app/var && chown cortex /data /app/var
USER cortex

EXPOSE 8000
CMD ["python", "-m", "core_app"]
