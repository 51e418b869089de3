"""Agents through the gateway: creates, the filtered list as an Owner (every agent) and as a Builder
(only those they contribute to: the visibility query), edits, the agent trail with a field filter,
and transfers (dry run and move). Prints figures; asserts nothing. Starts its own broker and system
(SQLite, or PostgreSQL with --postgres).

    .venv/bin/python bench/agents.py [--agents 300] [--concurrency 20] [--postgres]
"""
import eventlet

eventlet.monkey_patch()  # noqa: E402


from harness import arguments, backend_name, client, report, running_system, timed  # noqa: E402


def main():
    args = arguments("agents", 300, 20)
    with running_system(args.postgres) as system:
        url, n, c = system.url, args.agents, args.concurrency
        owner, builder = client("owner"), client("builder")
        org = owner.post(f"{url}/v1/organizations", json={"name": "Bench"}).json()["id"]
        other = owner.post(f"{url}/v1/organizations", json={"name": "Elsewhere"}).json()["id"]
        builder.get(f"{url}/v1/me").raise_for_status()
        invitation = owner.post(f"{url}/v1/organizations/{org}/invitations",
                                json={"email": "builder@example.com", "roles": ["builder"]}).json()
        builder.post(f"{url}/v1/invitations/{invitation['id']}/accept").raise_for_status()
        print(f"{n} agents, {c} concurrent, one process per service, {backend_name(args)}, 2-core machine")

        numbers, ids = iter(range(n)), []

        def create():
            i = next(numbers)
            api = builder if i % 10 == 0 else owner     # the Builder contributes to one agent in ten
            response = api.post(f"{url}/v1/organizations/{org}/agents",
                                json={"name": f"Agent {i:04d}", "instructions": "Be helpful. " * 40})
            response.raise_for_status()
            ids.append(response.json()["id"])
        report("POST agent (orgs <- members roles)", *timed(create, n, c))

        def listing(api):
            return lambda: api.get(f"{url}/v1/organizations/{org}/agents", params={"limit": 50}).raise_for_status()
        report(f"GET agents as Owner ({n} visible), 50 per page", *timed(listing(owner), 200, 10))
        report(f"GET agents as Builder ({n // 10} of {n} visible)", *timed(listing(builder), 200, 10))
        search = lambda: owner.get(f"{url}/v1/organizations/{org}/agents",  # noqa: E731
                                   params={"q": "agent 01", "limit": 50}).raise_for_status()
        report("GET agents ?q= (name search)", *timed(search, 200, 10))

        edits = iter(range(n))

        def edit():
            i = next(edits)
            owner.patch(f"{url}/v1/organizations/{org}/agents/{ids[i % len(ids)]}",
                        json={"instructions": f"Version {i}"}).raise_for_status()
        report("PATCH agent instructions", *timed(edit, n, c))
        trail = lambda: owner.get(f"{url}/v1/organizations/{org}/agents/{ids[0]}/audit",  # noqa: E731
                                  params={"field": "instructions"}).raise_for_status()
        report("GET agent trail ?field=instructions (audit <- members)", *timed(trail, 200, 10))

        dry = lambda: owner.post(f"{url}/v1/organizations/{org}/agents/{ids[1]}/transfer",  # noqa: E731
                                 json={"destination_organization_id": other, "dry_run": True}).raise_for_status()
        report("POST transfer dry run (3 calls to members)", *timed(dry, 100, 10))
        to_move = iter(ids[2:])

        def move():
            owner.post(f"{url}/v1/organizations/{org}/agents/{next(to_move)}/transfer",
                       json={"destination_organization_id": other, "dry_run": False}).raise_for_status()
        report("POST transfer (the move, two trail entries)", *timed(move, min(100, n - 2), c))


if __name__ == "__main__":
    main()
