"""Invitations and member lists through the gateway: concurrent invites (each a members -> orgs call),
concurrent accepts by distinct users, then listing and downloading the grown member list. Prints
figures; asserts nothing. Starts its own broker and system (SQLite, or PostgreSQL with --postgres).

    .venv/bin/python bench/invitations.py [--people 400] [--concurrency 30] [--postgres]
"""
import eventlet

eventlet.monkey_patch()  # noqa: E402


from harness import arguments, backend_name, client, report, running_system, timed  # noqa: E402


def main():
    args = arguments("people", 400, 30)
    with running_system(args.postgres) as system:
        url, n, c = system.url, args.people, args.concurrency
        owner = client("owner")
        org = owner.post(f"{url}/v1/organizations", json={"name": "Bench"}).json()["id"]
        print(f"{n} people, {c} concurrent, one process per service, {backend_name(args)}, 2-core machine")

        people = iter(range(n))

        def invite():
            owner.post(f"{url}/v1/organizations/{org}/invitations",
                       json={"email": f"person{next(people)}@example.com", "roles": ["member"]}).raise_for_status()
        report("POST invitation (members -> orgs, email logged)", *timed(invite, n, c))

        invitees = [client(f"person{i}") for i in range(n)]
        for session in invitees:      # first sight of each user (sign-in) kept out of the accept figure
            session.get(f"{url}/v1/me").raise_for_status()
        by_email, cursor = {}, None
        while True:
            page = owner.get(f"{url}/v1/organizations/{org}/invitations",
                             params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()
            by_email.update({i["email"]: i["id"] for i in page["items"]})
            cursor = page["next_cursor"]
            if not cursor:
                break
        pending = iter(range(n))

        def accept():
            i = next(pending)
            invitees[i].post(f"{url}/v1/invitations/{by_email[f'person{i}@example.com']}/accept").raise_for_status()
        report("POST accept (joins; distinct users)", *timed(accept, n, c))

        listing = lambda: owner.get(f"{url}/v1/organizations/{org}/members",  # noqa: E731
                                    params={"sort": "role", "limit": 50}).raise_for_status()
        report(f"GET members, {n + 1} members, sort=role, 50 per page", *timed(listing, 200, 10))
        csv = lambda: owner.get(f"{url}/v1/organizations/{org}/members",  # noqa: E731
                                params={"format": "csv"}).raise_for_status()
        report(f"GET members CSV ({n + 1} rows)", *timed(csv, 40, 4))


if __name__ == "__main__":
    main()
