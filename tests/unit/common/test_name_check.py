"""Stored names that break the readable-name rule (common.name_check): rows written before the rule existed are
reported by common.migrate.upgrade, one escaped WARNING each and a summary, and never rewritten; a table that
is missing is logged and passed over; `python -m common.name_check` prints the same findings."""
import logging

import pytest
from sqlalchemy import text

import common.config
from common import name_check
from common.db import get_engine
from common.migrate import upgrade

FORGED = "Acme\n2026-12-02 10:00:00,000 ERROR forged"
OVERRIDE = "Invoice \u202egnp.exe"
INVISIBLE = "\u200b\u200b"
GOOD = "Sehat Clinic \u8a3a\u7642\u6240"       # letters of any script are readable
NOW = "2026-01-01 00:00:00.000000"
UNSAFE = ("\n", "\r", "\u202e", "\u200b")

# The NOT NULL columns each table needs besides its id and name (its service's models.py).
ROWS = {
    "organizations": {"type": "collective", "created_by": "alice", "created_at": NOW, "updated_at": NOW},
    "agents": {"organization_id": "org-good", "code": "", "mission": "", "welcome_message": "",
               "instructions": "", "created_by": "alice", "created_at": NOW, "updated_at": NOW},
    "budget_groups": {"organization_id": "org-1", "created_by": "alice", "created_at": NOW, "updated_at": NOW},
    "api_keys": {"organization_id": "org-1", "scopes": '["usage:read"]', "secret_hash": "0" * 64,
                 "secret_start": "abcd", "created_by": "alice", "created_at": NOW},
    "users": {"email": "someone@example.com", "name_key": "", "created_at": NOW, "updated_at": NOW},
}


def migrated(tmp_path, service):
    url = f"sqlite:///{tmp_path / service}.sqlite"
    upgrade(service, url)
    return url


def insert(url, table, rows):
    """Rows (id, name) written with SQL, as rows stored before the rule would be."""
    with get_engine(url).begin() as connection:
        for row_id, name in rows:
            values = {"id": row_id, "name": name, **ROWS[table]}
            columns = ", ".join(values)
            connection.execute(text(f"INSERT INTO {table} ({columns}) VALUES "
                                    f"({', '.join(':' + c for c in values)})"), values)


def stored_names(url, table):
    with get_engine(url).connect() as connection:
        return dict(connection.execute(text(f"SELECT id, name FROM {table}")).all())


@pytest.fixture
def log(caplog):
    caplog.set_level(logging.INFO, logger="common.name_check")
    return caplog


def messages(caplog, level=None):
    return [r.getMessage() for r in caplog.records
            if r.name == "common.name_check" and (level is None or r.levelno == level)]


def reports(caplog):
    """The per-row WARNINGs (the summary aside)."""
    return [m for m in messages(caplog, logging.WARNING) if "breaks the readable-name rule" in m]


def assert_reported(caplog, expected):
    """Exactly the rows of `expected` ({(table, id): code}) are reported, each once, with its code, escaped
    name and the remedy."""
    found = reports(caplog)
    assert len(found) == len(expected), found
    for (table, row_id), (code, name) in expected.items():
        [line] = [m for m in found if f"{table}.name of id '{row_id}' " in m]
        assert f"({code})" in line
        assert repr(name) in line
        assert "not rewritten: " in line
    for message in messages(caplog):
        assert not any(character in message for character in UNSAFE), message


def test_orgs_rows_that_break_the_rule_are_reported_after_the_migration_and_kept(tmp_path, log):
    url = migrated(tmp_path, "orgs")
    assert messages(log, logging.WARNING) == []           # an empty database reports nothing
    organizations = [("org-forged", FORGED), ("org-override", OVERRIDE), ("org-invisible", INVISIBLE),
                     ("org-good", GOOD)]
    agents = [("agent-forged", FORGED), ("agent-good", "Triage bot")]
    insert(url, "organizations", organizations)
    insert(url, "agents", agents)
    log.clear()

    upgrade("orgs", url)

    assert_reported(log, {("organizations", "org-forged"): ("control_character", FORGED),
                          ("organizations", "org-override"): ("direction_override", OVERRIDE),
                          ("organizations", "org-invisible"): ("invisible_name", INVISIBLE),
                          ("agents", "agent-forged"): ("control_character", FORGED)})
    assert all("not rewritten: rename it through the API" in m for m in reports(log))
    assert not any("org-good" in m or "agent-good" in m for m in messages(log))
    [summary] = [m for m in messages(log, logging.WARNING) if m not in reports(log)]
    assert summary.startswith("orgs: 4 stored name(s) break the readable-name rule")
    assert "organizations.name: 3" in summary and "agents.name: 1" in summary
    assert stored_names(url, "organizations") == dict(organizations)     # nothing rewritten
    assert stored_names(url, "agents") == dict(agents)


def test_budget_groups_are_reported_in_credits(tmp_path, log):
    url = migrated(tmp_path, "credits")
    groups = [("group-override", OVERRIDE), ("group-invisible", INVISIBLE), ("group-good", "Research")]
    insert(url, "budget_groups", groups)
    log.clear()

    upgrade("credits", url)

    assert_reported(log, {("budget_groups", "group-override"): ("direction_override", OVERRIDE),
                          ("budget_groups", "group-invisible"): ("invisible_name", INVISIBLE)})
    assert not any("group-good" in m for m in messages(log))
    assert any(m.startswith("credits: 2 stored name(s)") for m in messages(log, logging.WARNING))
    assert stored_names(url, "budget_groups") == dict(groups)


def test_api_keys_and_display_names_are_reported_in_members(tmp_path, log):
    url = migrated(tmp_path, "members")
    keys = [("key-forged", FORGED), ("key-good", "CI deploys")]
    users = [("user-invisible", INVISIBLE), ("user-good", "Alice")]
    insert(url, "api_keys", keys)
    insert(url, "users", users)
    log.clear()

    upgrade("members", url)

    assert_reported(log, {("api_keys", "key-forged"): ("control_character", FORGED),
                          ("users", "user-invisible"): ("invisible_name", INVISIBLE)})
    [key_line] = [m for m in reports(log) if "key-forged" in m]
    assert key_line.endswith("not rewritten: rename it through the API")
    [user_line] = [m for m in reports(log) if "user-invisible" in m]
    assert "not rewritten: the user's next sign-in" in user_line
    assert not any("key-good" in m or "user-good" in m for m in messages(log))
    assert stored_names(url, "api_keys") == dict(keys)
    assert stored_names(url, "users") == dict(users)


def test_a_database_whose_names_are_all_readable_gets_only_an_info_summary(tmp_path, log):
    url = migrated(tmp_path, "orgs")
    insert(url, "organizations", [("org-good", GOOD)])
    log.clear()

    upgrade("orgs", url)

    assert messages(log, logging.WARNING) == []
    assert messages(log, logging.INFO) == ["orgs: every checked stored name is readable"]


@pytest.mark.parametrize("service", ["audit", "billing"])
def test_a_service_without_name_columns_reports_nothing(tmp_path, log, service):
    url = migrated(tmp_path, service)
    upgrade(service, url)
    assert messages(log) == []


def test_a_missing_table_or_column_is_logged_and_the_others_still_checked(tmp_path, log, monkeypatch):
    url = migrated(tmp_path, "orgs")
    insert(url, "organizations", [("org-forged", FORGED)])
    monkeypatch.setattr(name_check, "NAME_COLUMNS", (
        name_check.NameColumn("orgs", "no_such_table", "id", "name"),
        name_check.NameColumn("orgs", "agents", "id", "no_such_column"),
        *name_check.NAME_COLUMNS))
    log.clear()

    upgrade("orgs", url)                 # does not raise

    warnings = messages(log, logging.WARNING)
    assert any("no_such_table.name not checked" in m and "does not exist" in m for m in warnings)
    assert any("agents.no_such_column not checked" in m and "no column no_such_column" in m for m in warnings)
    assert_reported(log, {("organizations", "org-forged"): ("control_character", FORGED)})
    assert any(m.startswith("orgs: 1 stored name(s)") and m.endswith("; 2 column(s) not checked") for m in warnings)


def test_the_migration_stands_when_the_check_itself_fails(tmp_path, log, monkeypatch):
    url = migrated(tmp_path, "orgs")

    def broken(connection, service_name, skipped=None):
        raise RuntimeError("boom")
    monkeypatch.setattr(name_check, "find", broken)
    log.clear()

    upgrade("orgs", url)                 # does not raise

    assert any("check of stored names failed" in m for m in messages(log, logging.ERROR))


def test_run_alone_it_prints_the_findings_and_exits_0(tmp_path, capsys, monkeypatch):
    urls = {"orgs": migrated(tmp_path, "orgs"), "members": migrated(tmp_path, "members"),
            "credits": f"sqlite:///{tmp_path / 'never-migrated.sqlite'}"}
    insert(urls["orgs"], "organizations", [("org-override", OVERRIDE), ("org-good", GOOD)])
    monkeypatch.setattr(common.config, "database_url", lambda service, environ=None: urls[service])
    capsys.readouterr()

    assert name_check.main(["orgs", "members", "audit", "credits"]) == 0

    out = capsys.readouterr().out
    lines = out.splitlines()
    [finding] = [line for line in lines if "breaks the readable-name rule (" in line]
    assert finding.startswith("orgs: organizations.name of id 'org-override' ")
    assert "(direction_override)" in finding and repr(OVERRIDE) in finding
    assert finding.endswith("not rewritten: rename it through the API")
    assert "orgs: 1 stored name(s) break the readable-name rule (organizations.name: 1); none rewritten" in lines
    assert "members: every checked stored name is readable" in lines
    assert "audit: no human-facing name columns" in lines
    assert any(line.startswith("credits: no database yet") for line in lines)
    assert not (tmp_path / "never-migrated.sqlite").exists()        # a read-only check creates no database
    assert "\u202e" not in out
    assert stored_names(urls["orgs"], "organizations")["org-override"] == OVERRIDE


def test_an_unknown_service_is_refused(capsys):
    assert name_check.main(["nope"]) == 1
    assert "unknown service 'nope'" in capsys.readouterr().err


def test_a_table_that_cannot_be_read_is_logged_and_the_others_still_checked(tmp_path, log, monkeypatch):
    url = migrated(tmp_path, "orgs")
    insert(url, "agents", [("agent-forged", FORGED)])
    real = name_check._find_in

    def failing_on_organizations(connection, name_column):
        if name_column.table == "organizations":
            connection.execute(text("SELECT no_such_column FROM organizations"))
        return real(connection, name_column)
    monkeypatch.setattr(name_check, "_find_in", failing_on_organizations)
    log.clear()

    upgrade("orgs", url)                 # does not raise

    assert any("organizations.name not checked" in m and "could not be read (OperationalError" in m
               for m in messages(log, logging.WARNING))
    assert_reported(log, {("agents", "agent-forged"): ("control_character", FORGED)})
