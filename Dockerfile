# One image for every service and the gateway; docker-compose.yml picks the command. The production image (the
# default target, the last stage) holds the runtime tier only: requirements.txt, the lock of pyproject.toml's
# [project] dependencies, and the project without extras; no test, lint or lock tool, no fake payment provider.
FROM python:3.11-slim-bookworm AS runtime
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY pyproject.toml ./
COPY common common
COPY services services
COPY gateway gateway
COPY devtools devtools
# The project installed editable from /app (pyproject.toml), as `make run` does: no PYTHONPATH needed,
# and the migrations folders, which are not Python packages, are read from /app. Its dependencies are all
# in requirements.txt already: pip check fails the build if the lock and pyproject.toml disagree.
RUN pip install --no-cache-dir --no-deps -e . && pip check
ENV PYTHONWARNINGS=ignore PYTHONUNBUFFERED=1

# docker-compose.yml's localstripe container, the fake Stripe for a deployment without a Stripe account: the
# runtime image and the `local` extra at the versions the tests use (requirements-test.txt). Not for production.
FROM runtime AS localstripe
COPY requirements-test.txt .
RUN pip install --no-cache-dir -c requirements-test.txt -e '.[local]' && pip check

# The production image: `docker build .` builds this stage.
FROM runtime
