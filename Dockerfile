# One image for every service and the gateway; docker-compose.yml picks the command.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY common common
COPY services services
COPY gateway gateway
COPY config.yaml .
ENV PYTHONPATH=/app PYTHONWARNINGS=ignore PYTHONUNBUFFERED=1
