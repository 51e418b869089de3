# One image for every service and the gateway; docker-compose.yml picks the command.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY pyproject.toml ./
COPY common common
COPY services services
COPY gateway gateway
COPY devtools devtools
# The project installed editable from /app (pyproject.toml), as `make run` does: no PYTHONPATH needed,
# and the migrations folders, which are not Python packages, are read from /app.
RUN pip install --no-cache-dir --no-deps -e .
ENV PYTHONWARNINGS=ignore PYTHONUNBUFFERED=1
