"""The API against its own document: schemathesis generates requests from /openapi.json (its examples,
fuzzing and a stateful run) at the running system, signed in as the Owner of a populated organization
whose ids it is given, and checks every answer: no 5xx, a status the document lists for the route, the
documented content type, and a body that matches the documented schema. Bounded: 25 examples per
operation and a fixed seed, so that CI is repeatable; run it with another seed
(`SCHEMATHESIS_SEED=random`) to look further. SQLite only: the document does not depend on the database."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import create_agent, create_organization, invite, join, ok

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261127")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def populated_organization(system):
    """An Owner, and an organization with an agent, a member assigned to it, credit, a budget group with
    the member in it and a pending invitation: the ids every path parameter can be given."""
    owner = system.user("owner")
    org = create_organization(owner, "Fuzzed")["id"]
    agent = create_agent(owner, org, "Fuzzed agent")["id"]
    member = join(system, owner, org, ["member"])
    ok(owner.put(f"/v1/organizations/{org}/agents/{agent}/assignees/{member.id}"), 201)
    ok(owner.post(f"/v1/organizations/{org}/credits/grants", json={"amount": "100", "type": "paid"}), 201)
    group = ok(owner.post(f"/v1/organizations/{org}/budget-groups", json={"name": "Fuzzed", "monthly_limit": "10"}),
               201)["id"]
    ok(owner.put(f"/v1/organizations/{org}/budget-groups/{group}/members/{member.id}"), 201)
    invitation = invite(owner, org, "fuzz-invitee@example.com", ["member"])["id"]
    return owner, {"org_id": org, "agent_id": agent, "user_id": member.id, "group_id": group,
                   "invitation_id": invitation}


def test_every_answer_conforms_to_the_api_document(system, tmp_path):
    if system.backend != "sqlite":
        pytest.skip("the document does not depend on the database: one backend is enough")
    owner, ids = populated_organization(system)
    config = tmp_path / "schemathesis.toml"
    config.write_text("[parameters]\n" + "".join(f'"path.{name}" = "{value}"\n' for name, value in ids.items()))
    command = [str(SCHEMATHESIS), "--config-file", str(config), "run", f"{system.url}/openapi.json",
               "-H", f"Authorization: {owner.session.headers['Authorization']}",
               "--checks", CHECKS, "--max-examples", "25", "--workers", "2", "--no-color",
               # The coverage phase trips over a bug of Hypothesis with Python 3.11.7 ("AST constructor
               # recursion depth mismatch"), not over anything of ours.
               "--phases", "examples,fuzzing,stateful", "--report-dir", str(tmp_path / "report"),
               "--generation-database", "none"]       # no example database left in the tree: each run alike
    if SEED != "random":
        command += ["--seed", SEED]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    summary = result.stdout[result.stdout.rfind("SUMMARY"):] if "SUMMARY" in result.stdout else result.stdout
    print(summary[-3000:])
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-3000:]
