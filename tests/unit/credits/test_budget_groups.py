"""Budget groups (services/credits/budgets.py) and the credits service's reactions to member events,
as plain functions over a migrated SQLite store of the credits service, commands run as the pipeline runs
them (tests/unit/credits/domain.py); the fields' rules are the entrypoints' declared input."""
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from common.errors import BadRequest, Conflict, NotFound, ValidationFailed
from common.events import change_event
from common.paging import encode_cursor
from services.credits import budgets, ledger, reactions
from services.credits.models import BudgetGroup, BudgetGroupMember, MemberUsage, OutboxEvent, ProcessedEvent
from tests.unit.credits import domain
from tests.unit.credits.facts import credits_worker

ORG = "org-clinic"
OTHER_ORG = "org-elsewhere"
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)
NOW_ISO = "2026-03-15T12:00:00.000000Z"
LATER_ISO = "2026-03-16T09:30:00.000000Z"
CHANGED = "member.budget_group_changed"


@pytest.fixture
def store(make_store):
    return make_store("credits")


def events(store, type_=None):
    with store.read() as session:
        rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    return [row.envelope for row in rows if type_ is None or row.type == type_]


def new_group(store, who, name="Nurses", monthly_limit="10", builder_limit=None, org=ORG, now=NOW):
    return domain.create_group(store, who, org, {"name": name, "monthly_limit": monthly_limit,
                                                  "builder_limit": builder_limit}, now=now)["id"]


def put(store, who, group_id, user_id, is_builder=False, builders=0, org=ORG, now=NOW):
    """Assign with a fresh snapshot, as the entrypoint does when nothing races it."""
    snapshot = budgets.group_snapshot(store, org, group_id)
    return domain.assign_member(store, who, org, group_id, user_id, is_builder, builders, snapshot, now=now)


def member_rows(store, org=ORG):
    with store.read() as session:
        return sorted((m.user_id, m.group_id) for m in session.scalars(
            select(BudgetGroupMember).where(BudgetGroupMember.organization_id == org)))


def add_usage(store, user_id, period, units, org=ORG):
    with store.write() as session:
        session.add(MemberUsage(organization_id=org, user_id=user_id, period=period, used=units, updated_at=NOW))


# ---- the fields, as create_budget_group and update_budget_group declare them (common.contracts.budgets) ----
def clean_fields(data, creating):
    """`data` loaded by the declared input of create_budget_group (`creating`) or update_budget_group."""
    return domain.loaded("create_budget_group" if creating else "update_budget_group", fields=data)["fields"]


@pytest.mark.parametrize("data", [{}, {"name": None}, {"name": ""}, {"name": "   "}, {"monthly_limit": "5"}])
def test_name_is_required_on_create(data):
    with pytest.raises(ValidationFailed) as err:
        clean_fields(data, creating=True)
    assert (err.value.code, err.value.field) == ("name_required", "name")


def test_name_is_optional_on_edit_but_cannot_be_emptied():
    assert clean_fields({}, creating=False) == {}
    assert clean_fields({"builder_limit": 3}, creating=False) == {"builder_limit": 3}
    for empty in (None, "", " \t "):
        with pytest.raises(ValidationFailed) as err:
            clean_fields({"name": empty}, creating=False)
        assert (err.value.code, err.value.field) == ("name_required", "name")


def test_create_defaults_are_absent_from_cleaned_fields_and_name_is_trimmed():
    assert clean_fields({"name": "  Night shift \n"}, creating=True) == {"name": "Night shift"}


def test_name_at_most_200_characters_after_trimming():
    at_limit = "n" * 200
    assert clean_fields({"name": "  " + at_limit + "  "}, creating=True) == {"name": at_limit}
    with pytest.raises(ValidationFailed) as err:
        clean_fields({"name": "n" * 201}, creating=False)
    assert (err.value.code, err.value.field) == ("name_too_long", "name")


@pytest.mark.parametrize("name", [123, ["Nurses"], {"x": 1}, True, 1.5])
def test_name_must_be_a_string(name):
    with pytest.raises(ValidationFailed) as err:
        clean_fields({"name": name}, creating=True)
    assert (err.value.code, err.value.field) == ("invalid_type", "name")


@pytest.mark.parametrize("value, units", [(None, None), ("0", 0), (0, 0), ("12.5", 125000), (" 3 ", 30000),
                                          ("0.0001", 1), (7, 70000)])
def test_monthly_limit_is_an_amount_of_zero_or_more_or_none(value, units):
    assert clean_fields({"monthly_limit": value}, creating=False) == {"monthly_limit": units}


@pytest.mark.parametrize("value, code", [("-1", "invalid_amount"), (-5, "invalid_amount"), ("abc", "invalid_amount"),
                                         (1.5, "invalid_amount"), (True, "invalid_amount"), ("NaN", "invalid_amount"),
                                         ("1.00001", "too_many_decimal_places"),
                                         ("1000000001", "amount_too_large")])
def test_bad_monthly_limits_are_refused(value, code):
    with pytest.raises(ValidationFailed) as err:
        clean_fields({"name": "N", "monthly_limit": value}, creating=True)
    assert (err.value.code, err.value.field) == (code, "monthly_limit")


@pytest.mark.parametrize("value", [None, 0, 1, 100000])
def test_builder_limit_is_a_whole_number_up_to_100000_or_none(value):
    assert clean_fields({"builder_limit": value}, creating=False) == {"builder_limit": value}


@pytest.mark.parametrize("value", [True, False, 1.0, 2.5, -1, 100001, "3", [1]])
def test_bad_builder_limits_are_refused(value):
    with pytest.raises(ValidationFailed) as err:
        clean_fields({"name": "N", "builder_limit": value}, creating=True)
    assert (err.value.code, err.value.field) == ("invalid_builder_limit", "builder_limit")


def test_unknown_fields_are_refused_naming_the_first_in_order():
    with pytest.raises(ValidationFailed) as err:
        clean_fields({"name": "N", "zeta": 1, "colour": "red"}, creating=True)
    assert (err.value.code, err.value.field) == ("unknown_field", "colour")


@pytest.mark.parametrize("data", [None, "Nurses", ["name"], 5])
def test_body_must_be_an_object(data):
    with pytest.raises(ValidationFailed) as err:
        clean_fields(data, creating=True)
    assert err.value.code == "invalid_body"


# ---- create / list / get ------------------------------------------------------------------------------
def test_create_returns_the_group_and_emits_one_event(store, alice):
    group = domain.create_group(store, alice, ORG, {"name": " Nurses ", "monthly_limit": "10.5"}, now=NOW)
    assert group == {"id": group["id"], "organization_id": ORG, "name": "Nurses", "monthly_limit": "10.5000",
                     "monthly_limit_label": "10.5000", "builder_limit": None, "member_count": 0,
                     "created_by": "alice", "created_at": NOW_ISO, "updated_at": NOW_ISO}
    [event] = events(store)
    assert (event["type"], event["action"], event["organization_id"], event["actor"], event["target"]) == \
        ("budget_group.created", "create", ORG, alice.as_actor(), {"type": "budget_group", "id": group["id"]})
    assert event["after"] == {"name": "Nurses", "monthly_limit": "10.5000", "builder_limit": None}


def test_create_with_bad_fields_writes_nothing(store, alice):
    with pytest.raises(ValidationFailed):
        credits_worker(store, alice).create_budget_group(ORG, {"name": "N", "builder_limit": -1})
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(BudgetGroup)) == 0
    assert events(store) == []


def test_list_orders_by_name_case_insensitively_with_member_counts_and_no_limit_label(store, alice):
    beta = new_group(store, alice, "beta", monthly_limit=None)
    alpha = new_group(store, alice, "Alpha", monthly_limit="0")
    charlie = new_group(store, alice, "charlie", monthly_limit="99.99", builder_limit=2)
    new_group(store, alice, "Aardvark elsewhere", org=OTHER_ORG)
    put(store, alice, alpha, "bob")
    put(store, alice, alpha, "carl")
    put(store, alice, charlie, "dave")

    page = budgets.list_groups(store, ORG)
    assert page["next_cursor"] is None
    assert [(g["id"], g["name"], g["member_count"], g["monthly_limit"], g["monthly_limit_label"], g["builder_limit"])
            for g in page["items"]] == [
        (alpha, "Alpha", 2, "0.0000", "0.0000", None),
        (beta, "beta", 0, None, "No limit", None),
        (charlie, "charlie", 1, "99.9900", "99.9900", 2),
    ]


def test_list_pages(store, alice):
    for name in ("d", "B", "a", "C", "e"):
        new_group(store, alice, name)
    first = budgets.list_groups(store, ORG, limit=2)
    assert [g["name"] for g in first["items"]] == ["a", "B"]
    second = budgets.list_groups(store, ORG, cursor=first["next_cursor"], limit=2)
    assert [g["name"] for g in second["items"]] == ["C", "d"]
    third = budgets.list_groups(store, ORG, cursor=second["next_cursor"], limit=2)
    assert [g["name"] for g in third["items"]] == ["e"]
    assert third["next_cursor"] is None


def test_list_refuses_a_bad_limit_or_cursor(store, alice):
    with pytest.raises(ValidationFailed) as err:
        budgets.list_groups(store, ORG, limit=0)
    assert err.value.field == "limit"
    with pytest.raises(BadRequest) as err:
        budgets.list_groups(store, ORG, cursor="not-a-cursor!")
    assert err.value.code == "invalid_cursor"


def test_get_shows_each_members_usage_in_the_current_period_only(store, alice):
    group = new_group(store, alice, monthly_limit="10")
    for user in ("carl", "bob", "dave"):
        put(store, alice, group, user, now=NOW)
    add_usage(store, "bob", "2026-03", 40000)       # 4 this period
    add_usage(store, "bob", "2026-02", 500000)      # last period: not counted
    add_usage(store, "carl", "2026-02", 70000)      # only last period
    add_usage(store, "dave", "2026-03", 120000)     # over the limit: nothing remains, never negative
    add_usage(store, "carl", "2026-03", 90000, org=OTHER_ORG)   # another organization's spend

    answer = budgets.get_group(store, ORG, group, now=LATER)
    assert (answer["id"], answer["name"], answer["member_count"], answer["monthly_limit"]) == \
        (group, "Nurses", 3, "10.0000")
    assert (answer["period"], answer["period_start"], answer["resets_at"]) == \
        ("2026-03", "2026-03-01T00:00:00.000000Z", "2026-04-01T00:00:00.000000Z")
    assert answer["members"]["items"] == [
        {"user_id": "bob", "used": "4.0000", "limit": "10.0000", "remaining": "6.0000", "added_at": NOW_ISO},
        {"user_id": "carl", "used": "0.0000", "limit": "10.0000", "remaining": "10.0000", "added_at": NOW_ISO},
        {"user_id": "dave", "used": "12.0000", "limit": "10.0000", "remaining": "0.0000", "added_at": NOW_ISO},
    ]
    assert answer["members"]["next_cursor"] is None


def test_get_in_the_next_period_starts_from_zero(store, alice):
    group = new_group(store, alice, monthly_limit="10")
    put(store, alice, group, "bob")
    add_usage(store, "bob", "2026-03", 40000)
    april = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)
    [member] = budgets.get_group(store, ORG, group, now=april)["members"]["items"]
    assert (member["used"], member["remaining"]) == ("0.0000", "10.0000")


def test_get_of_a_group_without_limit_shows_no_remaining(store, alice):
    group = new_group(store, alice, monthly_limit=None)
    put(store, alice, group, "bob")
    add_usage(store, "bob", "2026-03", 25000)
    answer = budgets.get_group(store, ORG, group, now=NOW)
    assert (answer["monthly_limit"], answer["monthly_limit_label"]) == (None, "No limit")
    assert answer["members"]["items"] == [{"user_id": "bob", "used": "2.5000", "limit": None, "remaining": None,
                                  "added_at": NOW_ISO}]


def test_get_in_december_resets_on_the_first_of_january(store, alice):
    group = new_group(store, alice)
    answer = budgets.get_group(store, ORG, group, now=datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert (answer["period"], answer["period_start"], answer["resets_at"]) == \
        ("2026-12", "2026-12-01T00:00:00.000000Z", "2027-01-01T00:00:00.000000Z")


def test_get_pages_members_by_user_id(store, alice):
    group = new_group(store, alice)
    for user in ("dave", "bob", "carl"):
        put(store, alice, group, user)
    seen, cursor, pages = [], None, 0
    while True:
        answer = budgets.get_group(store, ORG, group, cursor=cursor, limit=1, now=NOW)
        pages += 1
        assert answer["member_count"] == 3
        assert len(answer["members"]["items"]) == 1
        seen.append(answer["members"]["items"][0]["user_id"])
        cursor = answer["members"]["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == (["bob", "carl", "dave"], 3)
    after_carl = budgets.get_group(store, ORG, group, cursor=budgets.GROUP_MEMBERS.cursor(("carl",)), limit=5, now=NOW)
    assert [m["user_id"] for m in after_carl["members"]["items"]] == ["dave"]


def test_get_refuses_a_bad_members_cursor(store, alice):
    group = new_group(store, alice)
    for cursor in (encode_cursor({"user_id": 5}), encode_cursor({"offset": 1}), encode_cursor(["bob"]), "%%%",
                   encode_cursor({"user_id": "carl"}), encode_cursor({"list": "budget_group_members", "user_id": 5}),
                   budgets.GROUPS_BY_NAME.cursor(("carl", "g1"))):
        with pytest.raises(BadRequest) as err:
            budgets.get_group(store, ORG, group, cursor=cursor)
        assert err.value.code == "invalid_cursor", cursor
        with pytest.raises(BadRequest):
            budgets.get_group(store, ORG, "no-such-group", cursor=cursor)   # refused before the group is looked up


# ---- update / delete -----------------------------------------------------------------------------------
def test_update_emits_only_the_changed_fields_with_amounts_as_strings(store, alice, bob):
    group = new_group(store, alice, monthly_limit="10", builder_limit=1)
    answer = domain.update_group(store, bob, ORG, group, {"name": "Nurses", "monthly_limit": "25.5",
                                                           "builder_limit": None}, now=LATER)
    assert (answer["name"], answer["monthly_limit"], answer["builder_limit"], answer["updated_at"],
            answer["created_at"]) == ("Nurses", "25.5000", None, LATER_ISO, NOW_ISO)
    [event] = events(store, "budget_group.updated")
    assert (event["action"], event["actor"], event["target"]) == \
        ("update", bob.as_actor(), {"type": "budget_group", "id": group})
    assert event["before"] == {"monthly_limit": "10.0000", "builder_limit": 1}
    assert event["after"] == {"monthly_limit": "25.5000", "builder_limit": None}


def test_update_from_no_limit_to_a_limit(store, alice):
    group = new_group(store, alice, monthly_limit=None)
    domain.update_group(store, alice, ORG, group, {"monthly_limit": 5}, now=LATER)
    [event] = events(store, "budget_group.updated")
    assert (event["before"], event["after"]) == ({"monthly_limit": None}, {"monthly_limit": "5.0000"})


def test_update_that_changes_nothing_emits_nothing(store, alice):
    group = new_group(store, alice, monthly_limit="10", builder_limit=1)
    put(store, alice, group, "bob")
    answer = domain.update_group(store, alice, ORG, group,
                                  {"name": "  Nurses ", "monthly_limit": "10.0000", "builder_limit": 1}, now=LATER)
    assert (answer["updated_at"], answer["member_count"]) == (NOW_ISO, 1)
    assert events(store, "budget_group.updated") == []


def test_update_with_bad_fields_changes_nothing(store, alice):
    group = new_group(store, alice, monthly_limit="10")
    with pytest.raises(ValidationFailed):
        credits_worker(store, alice).update_budget_group(ORG, group, {"monthly_limit": "-2"})
    assert budgets.get_group(store, ORG, group)["monthly_limit"] == "10.0000"


def test_delete_removes_the_members_and_emits_one_event(store, alice, bob):
    group = new_group(store, alice, monthly_limit="10", builder_limit=3)
    keep = new_group(store, alice, "Other")
    put(store, alice, group, "bob")
    put(store, alice, group, "carl")
    put(store, alice, keep, "dave")
    domain.delete_group(store, bob, ORG, group, now=LATER)

    assert member_rows(store) == [("dave", keep)]
    # The one event carries each former member's new state (in no group) for the members service.
    [deleted] = events(store, "budget_group.deleted")
    assert [(s["user_id"], s["budget_group_id"], s["version"]) for s in deleted["state"]["budget_group_members"]] \
        == [("bob", None, 2), ("carl", None, 2)]
    # Uncapped: no group binds bob's spending any more.
    assert ledger.allowance_of(store, ORG, "bob", now=LATER).group is None
    with pytest.raises(NotFound):
        budgets.get_group(store, ORG, group)
    [event] = events(store, "budget_group.deleted")
    assert (event["action"], event["actor"], event["target"], event["after"]) == \
        ("delete", bob.as_actor(), {"type": "budget_group", "id": group}, {})
    assert event["before"] == {"name": "Nurses", "monthly_limit": "10.0000", "builder_limit": 3, "member_count": 2}
    assert [g["id"] for g in budgets.list_groups(store, ORG)["items"]] == [keep]


def test_another_organizations_group_is_not_found(store, alice):
    theirs = new_group(store, alice, "Theirs", org=OTHER_ORG)
    put(store, alice, theirs, "bob", org=OTHER_ORG)
    snapshot = {"builder_limit": None, "member_ids": ["bob"]}
    attempts = [
        lambda: budgets.get_group(store, ORG, theirs),
        lambda: domain.update_group(store, alice, ORG, theirs, {"name": "Mine now"}),
        lambda: domain.delete_group(store, alice, ORG, theirs),
        lambda: budgets.group_snapshot(store, ORG, theirs),
        lambda: domain.assign_member(store, alice, ORG, theirs, "carl", False, 0, snapshot),
        lambda: domain.unassign_member(store, alice, ORG, theirs, "bob"),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound) as err:
            attempt()
        assert (err.value.code, err.value.field) == ("budget_group_not_found", "budget_group_id")
    answer = budgets.get_group(store, OTHER_ORG, theirs)
    assert (answer["name"], answer["member_count"]) == ("Theirs", 1)
    assert member_rows(store) == [] and member_rows(store, OTHER_ORG) == [("bob", theirs)]
    assert [e["type"] for e in events(store)] == ["budget_group.created", CHANGED]


def test_unknown_group_ids_are_not_found(store, alice):
    new_group(store, alice)
    for group_id in ("no-such-group", None, 42, "x" * 65):
        with pytest.raises(NotFound) as err:
            budgets.get_group(store, ORG, group_id)
        assert err.value.code == "budget_group_not_found", group_id


# ---- members of groups ---------------------------------------------------------------------------------
def test_snapshot_lists_the_members_sorted_with_the_builder_limit(store, alice):
    group = new_group(store, alice, builder_limit=4)
    for user in ("dave", "bob", "carl"):
        put(store, alice, group, user)
    assert budgets.group_snapshot(store, ORG, group) == {"builder_limit": 4, "member_ids": ["bob", "carl", "dave"]}


def test_assign_creates_the_membership_with_one_event(store, alice):
    group = new_group(store, alice)
    membership, created = put(store, alice, group, "bob", now=LATER)
    assert created is True
    assert membership == {"user_id": "bob", "budget_group_id": group, "added_by": "alice", "added_at": LATER_ISO}
    [event] = events(store, CHANGED)
    assert (event["action"], event["organization_id"], event["actor"], event["target"]) == \
        ("update", ORG, alice.as_actor(), {"type": "member", "id": "bob"})
    assert (event["before"], event["after"]) == ({"budget_group_id": None}, {"budget_group_id": group})


def test_assigning_again_changes_nothing(store, alice, bob):
    group = new_group(store, alice)
    put(store, alice, group, "carl", now=NOW)
    membership, created = put(store, bob, group, "carl", now=LATER)
    assert created is False
    assert membership == {"user_id": "carl", "budget_group_id": group, "added_by": "alice", "added_at": NOW_ISO}
    assert len(events(store, CHANGED)) == 1


def test_assign_moves_a_member_out_of_their_other_group(store, alice, bob):
    day, night = new_group(store, alice, "Day"), new_group(store, alice, "Night")
    put(store, alice, day, "carl")
    membership, created = put(store, bob, night, "carl", now=LATER)
    assert created is True
    assert membership == {"user_id": "carl", "budget_group_id": night, "added_by": "bob", "added_at": LATER_ISO}
    assert member_rows(store) == [("carl", night)]
    assert budgets.get_group(store, ORG, day)["member_count"] == 0
    moves = events(store, CHANGED)
    assert len(moves) == 2
    assert (moves[1]["actor"], moves[1]["before"], moves[1]["after"]) == \
        (bob.as_actor(), {"budget_group_id": day}, {"budget_group_id": night})


def test_a_builder_is_refused_when_the_group_holds_its_limit_of_builders(store, alice):
    group = new_group(store, alice, "Builders", builder_limit=1)
    put(store, alice, group, "carl", is_builder=True, builders=0)
    before = events(store)
    with pytest.raises(Conflict) as err:
        put(store, alice, group, "dave", is_builder=True, builders=1)
    assert (err.value.code, err.value.field, err.value.details) == \
        ("builder_limit_reached", "user_id", {"builder_limit": 1, "builders": 1})
    assert member_rows(store) == [("carl", group)]
    assert events(store) == before


def test_a_builder_limit_of_zero_admits_no_builder(store, alice):
    group = new_group(store, alice, builder_limit=0)
    with pytest.raises(Conflict) as err:
        put(store, alice, group, "dave", is_builder=True, builders=0)
    assert err.value.code == "builder_limit_reached"
    assert member_rows(store) == []


def test_a_builder_is_admitted_below_the_limit(store, alice):
    group = new_group(store, alice, builder_limit=2)
    put(store, alice, group, "carl", is_builder=True, builders=0)
    _, created = put(store, alice, group, "dave", is_builder=True, builders=1)
    assert created is True
    assert member_rows(store) == [("carl", group), ("dave", group)]


def test_non_builders_are_not_counted_against_the_builder_limit(store, alice):
    group = new_group(store, alice, builder_limit=1)
    put(store, alice, group, "carl", is_builder=True, builders=0)
    _, created = put(store, alice, group, "erin", is_builder=False, builders=1)
    assert created is True
    _, created = put(store, alice, group, "fay", is_builder=False, builders=1)
    assert created is True
    assert member_rows(store) == [("carl", group), ("erin", group), ("fay", group)]


def test_a_builder_refused_by_a_full_group_stays_in_their_old_group(store, alice):
    day, full = new_group(store, alice, "Day"), new_group(store, alice, "Full", builder_limit=1)
    put(store, alice, day, "erin", is_builder=True)
    put(store, alice, full, "carl", is_builder=True)
    with pytest.raises(Conflict) as err:
        put(store, alice, full, "erin", is_builder=True, builders=1)
    assert err.value.code == "builder_limit_reached"
    assert member_rows(store) == [("carl", full), ("erin", day)]
    assert len(events(store, CHANGED)) == 2


def test_lowering_the_builder_limit_evicts_nobody_and_refuses_the_next_builder(store, alice):
    group = new_group(store, alice, builder_limit=2)
    put(store, alice, group, "carl", is_builder=True)
    put(store, alice, group, "dave", is_builder=True, builders=1)
    domain.update_group(store, alice, ORG, group, {"builder_limit": 1})
    assert member_rows(store) == [("carl", group), ("dave", group)]
    _, created = put(store, alice, group, "dave", is_builder=True, builders=1)   # already there: kept
    assert created is False
    with pytest.raises(Conflict) as err:
        put(store, alice, group, "erin", is_builder=True, builders=2)
    assert (err.value.code, err.value.details) == ("builder_limit_reached", {"builder_limit": 1, "builders": 2})


def test_a_member_added_since_the_snapshot_is_group_changed(store, alice):
    group = new_group(store, alice, builder_limit=2)
    snapshot = budgets.group_snapshot(store, ORG, group)
    put(store, alice, group, "carl", is_builder=True)     # slips in after the roles were looked up
    with pytest.raises(budgets.GroupChanged):
        domain.assign_member(store, alice, ORG, group, "dave", True, 0, snapshot)
    assert member_rows(store) == [("carl", group)]
    assert len(events(store, CHANGED)) == 1


def test_a_member_removed_since_the_snapshot_is_group_changed(store, alice):
    group = new_group(store, alice, builder_limit=2)
    put(store, alice, group, "carl", is_builder=True)
    snapshot = budgets.group_snapshot(store, ORG, group)
    domain.unassign_member(store, alice, ORG, group, "carl")
    with pytest.raises(budgets.GroupChanged):
        domain.assign_member(store, alice, ORG, group, "dave", True, 1, snapshot)
    assert member_rows(store) == []


def test_a_builder_limit_changed_since_the_snapshot_is_group_changed(store, alice):
    for before, after in ((1, 2), (None, 1), (3, 1)):
        group = new_group(store, alice, f"{before} to {after}", builder_limit=before)
        snapshot = budgets.group_snapshot(store, ORG, group)
        domain.update_group(store, alice, ORG, group, {"builder_limit": after})
        with pytest.raises(budgets.GroupChanged):
            domain.assign_member(store, alice, ORG, group, "dave", True, 0, snapshot)
    assert member_rows(store) == []


def test_a_stale_snapshot_does_not_matter_once_the_builder_limit_is_lifted(store, alice):
    group = new_group(store, alice, builder_limit=1)
    snapshot = budgets.group_snapshot(store, ORG, group)
    domain.update_group(store, alice, ORG, group, {"builder_limit": None})
    _, created = domain.assign_member(store, alice, ORG, group, "dave", True, 5, snapshot)
    assert created is True


# ---- add_member: the roles lookup, and again when the group changed meanwhile ---------------------------
def roles_lookup(roles, meanwhile=None):
    """The members' roles lookup add_member takes, answering from `roles` ({user_id: [roles]}) for those
    who are members; `meanwhile(n)` runs before the n-th call answers. Returns (lookup, the ids asked
    about per call)."""
    asked = []

    def roles_of(user_ids):
        asked.append(list(user_ids))
        if meanwhile is not None:
            meanwhile(len(asked))
        return {u: roles[u] for u in user_ids if u in roles}
    return roles_of, asked


def members_of(store, group_id):
    return budgets.group_snapshot(store, ORG, group_id)["member_ids"]


def test_add_member_counts_the_builders_among_the_other_members(store, alice):
    group = new_group(store, alice, builder_limit=2)
    put(store, alice, group, "carl", is_builder=True)
    put(store, alice, group, "dave")
    put(store, alice, group, "gone")      # left the organization: the lookup does not answer for them
    roles_of, asked = roles_lookup({"carl": ["builder", "member"], "dave": ["member"], "erin": ["builder"],
                                    "fay": ["builder"]})

    answer = domain.add_member(store, alice, ORG, group, "erin", roles_of, now=LATER)
    assert answer == {"membership": {"user_id": "erin", "budget_group_id": group, "added_by": "alice",
                                     "added_at": LATER_ISO}, "created": True}
    assert asked == [["erin"], ["carl", "dave", "gone"]]

    with pytest.raises(Conflict) as err:
        domain.add_member(store, alice, ORG, group, "fay", roles_of)
    assert (err.value.code, err.value.details) == ("builder_limit_reached", {"builder_limit": 2, "builders": 2})
    assert asked[2:] == [["fay"], ["carl", "dave", "erin", "gone"]]
    assert members_of(store, group) == ["carl", "dave", "erin", "gone"]


def test_add_member_asks_only_the_members_roles_for_a_non_builder_or_a_group_without_builder_limit(store, alice):
    capped, open_ = new_group(store, alice, "Capped", builder_limit=1), new_group(store, alice, "Open")
    put(store, alice, capped, "carl", is_builder=True)
    put(store, alice, open_, "carl", is_builder=True)
    roles_of, asked = roles_lookup({"bob": ["member"], "erin": ["builder"]})
    assert domain.add_member(store, alice, ORG, capped, "bob", roles_of)["created"] is True
    assert domain.add_member(store, alice, ORG, open_, "erin", roles_of)["created"] is True
    assert asked == [["bob"], ["erin"]]


def test_a_builder_already_in_the_group_is_not_counted_against_themselves(store, alice):
    group = new_group(store, alice, builder_limit=1)
    put(store, alice, group, "erin", is_builder=True)
    roles_of, asked = roles_lookup({"erin": ["builder"]})
    assert domain.add_member(store, alice, ORG, group, "erin", roles_of)["created"] is False
    assert asked == [["erin"], []]      # no other member: nobody else to ask about


def test_add_member_retries_when_the_group_changed(store, alice, monkeypatch):
    group = new_group(store, alice, builder_limit=3)
    roles_of, _ = roles_lookup({"bob": ["builder"]})
    real, attempts = budgets.assign_member, []

    def assign_member(*args, **kwargs):
        attempts.append(args)
        if len(attempts) == 1:
            raise budgets.GroupChanged()
        return real(*args, **kwargs)
    monkeypatch.setattr(budgets, "assign_member", assign_member)

    answer = domain.add_member(store, alice, ORG, group, "bob", roles_of)
    assert answer["created"] is True and answer["membership"]["budget_group_id"] == group
    assert len(attempts) == 2
    assert members_of(store, group) == ["bob"]


def test_add_member_gives_up_after_three_changes(store, alice, monkeypatch):
    group = new_group(store, alice, builder_limit=3)
    roles_of, _ = roles_lookup({"bob": ["builder"]})
    attempts = []

    def assign_member(*args, **kwargs):
        attempts.append(args)
        raise budgets.GroupChanged()
    monkeypatch.setattr(budgets, "assign_member", assign_member)

    with pytest.raises(Conflict) as err:
        domain.add_member(store, alice, ORG, group, "bob", roles_of)
    assert err.value.code == "budget_group_busy"
    assert len(attempts) == budgets.ASSIGN_ATTEMPTS == 3
    assert members_of(store, group) == []


def test_a_builder_who_slips_in_during_the_roles_lookup_is_counted_on_the_retry(store, alice):
    """No mock of assign_member: another assignment commits between the snapshot and the assignment;
    the assignment notices (GroupChanged), add_member looks the roles up again and refuses."""
    group = new_group(store, alice, builder_limit=1)
    put(store, alice, group, "carl")                      # not a Builder

    def meanwhile(call):
        if call == 2:                                     # the first lookup of the others
            put(store, alice, group, "dave", is_builder=True)
    roles_of, asked = roles_lookup({"carl": ["member"], "dave": ["builder"], "erin": ["builder"]}, meanwhile)

    with pytest.raises(Conflict) as err:
        domain.add_member(store, alice, ORG, group, "erin", roles_of)
    assert (err.value.code, err.value.details) == ("builder_limit_reached", {"builder_limit": 1, "builders": 1})
    assert asked == [["erin"], ["carl"], ["carl", "dave"]]
    assert members_of(store, group) == ["carl", "dave"]


def test_add_someone_who_is_not_a_member_is_member_not_found(store, alice):
    group = new_group(store, alice)
    roles_of, asked = roles_lookup({"bob": ["member"]})
    with pytest.raises(NotFound) as err:
        domain.add_member(store, alice, ORG, group, "stranger", roles_of)
    assert (err.value.code, err.value.field, err.value.message) == \
        ("member_not_found", "user_id", "There is no such member in this organization.")
    assert asked == [["stranger"]]
    assert members_of(store, group) == []


def test_add_a_malformed_user_id_is_member_not_found_without_a_lookup(store, alice):
    group = new_group(store, alice)
    roles_of, asked = roles_lookup({"bob": ["member"]})
    for user_id in (None, 7, "", "u" * 129, "b\x00b", ["bob"]):
        with pytest.raises(NotFound) as err:
            domain.add_member(store, alice, ORG, group, user_id, roles_of)
        assert err.value.code == "member_not_found", user_id
    assert asked == []
    assert members_of(store, group) == []


def test_unassign_takes_the_member_out_with_one_event(store, alice, bob):
    group = new_group(store, alice)
    put(store, alice, group, "carl")
    put(store, alice, group, "dave")
    assert domain.unassign_member(store, bob, ORG, group, "carl", now=LATER) is None
    assert member_rows(store) == [("dave", group)]
    event = events(store, CHANGED)[-1]
    assert (event["actor"], event["target"], event["before"], event["after"]) == \
        (bob.as_actor(), {"type": "member", "id": "carl"}, {"budget_group_id": group}, {"budget_group_id": None})


def test_unassign_of_someone_not_in_this_group_is_not_found(store, alice):
    group, other = new_group(store, alice, "A"), new_group(store, alice, "B")
    put(store, alice, other, "dave")
    before = events(store)
    for user_id in ("carl", "dave", None, 7):      # nowhere, in the other group, malformed
        with pytest.raises(NotFound) as err:
            domain.unassign_member(store, alice, ORG, group, user_id)
        assert (err.value.code, err.value.field) == ("not_in_budget_group", "user_id"), user_id
    assert member_rows(store) == [("dave", other)]
    assert events(store) == before


def test_every_change_of_a_members_group_carries_their_state_with_a_version_that_only_grows(store, alice):
    a, b = new_group(store, alice, "A"), new_group(store, alice, "B")
    theirs = new_group(store, alice, "T", org=OTHER_ORG)
    put(store, alice, a, "bob")
    put(store, alice, b, "bob")                                   # moved
    domain.unassign_member(store, alice, ORG, b, "bob")          # taken out
    put(store, alice, a, "bob")                                   # and in again: the count goes on
    put(store, alice, theirs, "bob", org=OTHER_ORG)               # another organization: its own count
    states = [s for e in events(store, "member.budget_group_changed") for s in e["state"]["budget_group_members"]]
    assert [(s["organization_id"], s["budget_group_id"], s["version"]) for s in states] == \
        [(ORG, a, 1), (ORG, b, 2), (ORG, None, 3), (ORG, a, 4), (OTHER_ORG, theirs, 1)]


# ---- reactions: a member who leaves or is removed leaves their group -------------------------------------
def removed(org, user_id, actor, type_="member.removed"):
    return change_event(type_, "delete", org, actor, "member", user_id, before={"roles": ["member"]})


def test_a_removed_member_leaves_their_group_once(store, alice, bob):
    group = new_group(store, alice)
    put(store, alice, group, "bob")
    put(store, alice, group, "carl")
    event = removed(ORG, "bob", alice.as_actor())

    assert reactions.handle_change_event(store, event) is True
    assert member_rows(store) == [("carl", group)]
    out = events(store, CHANGED)[-1]
    assert (out["action"], out["organization_id"], out["actor"], out["target"]) == \
        ("update", ORG, alice.as_actor(), {"type": "member", "id": "bob"})
    assert (out["before"], out["after"], out["correlation_id"]) == \
        ({"budget_group_id": group}, {"budget_group_id": None}, event["event_id"])

    count = len(events(store))
    put(store, alice, group, "bob")                      # an Admin puts bob back (say he rejoined)
    assert reactions.handle_change_event(store, event) is False      # redelivered
    assert member_rows(store) == [("bob", group), ("carl", group)]
    assert len(events(store)) == count + 1               # only the re-assignment
    assert [e["correlation_id"] for e in events(store, CHANGED)].count(event["event_id"]) == 1


def test_a_member_who_left_leaves_their_group(store, alice, bob):
    group = new_group(store, alice)
    put(store, alice, group, "bob")
    event = removed(ORG, "bob", bob.as_actor(), type_="member.left")
    assert reactions.handle_change_event(store, event) is True
    assert member_rows(store) == []
    out = events(store, CHANGED)[-1]
    assert (out["actor"], out["target"]["id"], out["correlation_id"]) == (bob.as_actor(), "bob", event["event_id"])
    assert reactions.handle_change_event(store, event) is False
    assert len(events(store, CHANGED)) == 2


def test_a_member_in_no_group_is_recorded_as_handled_without_event(store, alice):
    group = new_group(store, alice)
    put(store, alice, group, "carl")
    event = removed(ORG, "bob", alice.as_actor())
    assert reactions.handle_change_event(store, event) is True
    assert member_rows(store) == [("carl", group)]
    assert len(events(store, CHANGED)) == 1
    with store.read() as session:
        assert session.get(ProcessedEvent, event["event_id"]).type == "member.removed"


def test_removal_in_another_organization_leaves_the_member_here_untouched(store, alice):
    group = new_group(store, alice)
    put(store, alice, group, "bob")
    assert reactions.handle_change_event(store, removed(OTHER_ORG, "bob", alice.as_actor())) is True
    assert member_rows(store) == [("bob", group)]


def test_other_event_types_change_nothing(store, alice):
    group = new_group(store, alice)
    put(store, alice, group, "bob")
    event = change_event("member.roles_changed", "update", ORG, alice.as_actor(), "member", "bob",
                         before={"roles": ["member"]}, after={"roles": ["builder"]})
    assert reactions.handle_change_event(store, event) is True
    assert member_rows(store) == [("bob", group)]
    assert len(events(store, CHANGED)) == 1
