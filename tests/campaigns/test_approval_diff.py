"""The approval diff: what changed in a campaign since it last became approved."""

from __future__ import annotations

from tests.campaigns.test_campaign_lifecycle import BASE, _team
from tests.helpers import error_of


async def _diff(team, cid: int, who: str = "rev") -> dict:
    resp = await team.client.get(f"{BASE}/{cid}/diff", headers=team.auth[who])
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_never_approved_says_so(client_with, monkeypatch):
    client = await client_with(review_levels=1)
    team = await _team(client, monkeypatch)
    cid = (await team.create())["id"]
    await team.act("op", cid, "submit")
    assert await _diff(team, cid) == {"approved": False, "changes": []}


async def test_edit_after_approval_shows_exactly_the_changed_fields(client_with, monkeypatch):
    client = await client_with(review_levels=1, copy_edits_skip_review=True)
    team = await _team(client, monkeypatch)
    created = await team.create()
    cid = created["id"]
    await team.act("op", cid, "submit")
    await team.act("rev", cid, "approve", comment="ok")
    assert await _diff(team, cid) == {"approved": True, "changes": []}
    old_limit = created["per_user_limit"]
    resp = await client.patch(
        f"{BASE}/{cid}", json={"per_user_limit": old_limit + 2, "tags": ["edited"]}, headers=team.auth["op"]
    )
    assert (await resp.json())["status"] == "in_review"  # a rule edit: re-submitted
    diff = await _diff(team, cid)
    assert diff["approved"] is True
    assert diff["changes"] == [
        {"field": "per_user_limit", "old": old_limit, "new": old_limit + 2},
        {"field": "tags", "old": created["tags"], "new": ["edited"]},
    ]
    # Approving again makes the edited version the approved one.
    await team.act("rev2", cid, "approve", comment="ok again")
    assert await _diff(team, cid) == {"approved": True, "changes": []}


async def test_returned_campaign_diffs_against_the_approved_version(client_with, monkeypatch):
    client = await client_with(review_levels=1, copy_edits_skip_review=False)
    team = await _team(client, monkeypatch)
    created = await team.create()
    cid = created["id"]
    await team.act("op", cid, "submit")
    await team.act("rev", cid, "approve")
    resp = await client.patch(f"{BASE}/{cid}", json={"budget_limit": 70_000}, headers=team.auth["op"])
    assert (await resp.json())["status"] == "in_review"
    await team.act("rev2", cid, "return", comment="smaller please")
    resp = await client.patch(f"{BASE}/{cid}", json={"budget_limit": 60_000}, headers=team.auth["op"])
    assert (await resp.json())["status"] == "returned"
    await team.act("op", cid, "submit")
    changes = (await _diff(team, cid))["changes"]
    assert changes == [{"field": "budget_limit", "old": created["budget_limit"], "new": 60_000}]


async def test_zero_levels_approval_at_edit_time_is_the_new_version(client_with, monkeypatch):
    client = await client_with(review_levels=0)
    team = await _team(client, monkeypatch)
    cid = (await team.create())["id"]
    await team.act("op", cid, "submit")
    resp = await client.patch(f"{BASE}/{cid}", json={"per_user_limit": 3}, headers=team.auth["op"])
    assert (await resp.json())["status"] == "approved"
    assert await _diff(team, cid, "op") == {"approved": True, "changes": []}


async def test_unknown_campaign_is_a_404(client, monkeypatch):
    team = await _team(client, monkeypatch)
    resp = await client.get(f"{BASE}/999999/diff", headers=team.auth["rev"])
    assert resp.status == 404
    assert (await error_of(resp))["code"] == "not_found"
