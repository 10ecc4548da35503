from tests.helpers import bearer, customer_login


async def test_login_and_me(client):
    tokens = await customer_login(client, "o_alice")
    resp = await client.get("/api/v1/me", headers=bearer(tokens["access_token"]))
    assert resp.status == 200
    body = await resp.json()
    assert body["id"] == tokens["user"]["id"]
