# The two commands: `make run` and `make test`. Both set up what they need first (scripts/setup.sh).
.PHONY: run test setup lock token clean

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

setup:
	bash scripts/setup.sh --with-postgres

# The lock files from pyproject.toml (pip-compile); make lock ARGS="--upgrade-package NAME" moves one package.
lock:
	bash scripts/lock.sh $(ARGS)

# make token SUB=alice EMAIL=alice@example.com NAME=Alice
token:
	@PYTHONWARNINGS=ignore .venv/bin/python -m gateway.tokens --sub "$(or $(SUB),alice)" \
	  --email "$(or $(EMAIL),alice@example.com)" --name "$(or $(NAME),Alice)"

clean:
	rm -rf data .pytest_cache
