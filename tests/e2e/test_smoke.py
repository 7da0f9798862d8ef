from uuid import uuid4


async def test_book_a_room(client):
    r = await client.post("/resources", json={"name": "Room 1"})
    assert r.status_code == 201, r.text
    rid = r.json()["resource_id"]
    body = {"resource_id": rid, "start_time": "2030-05-18T10:00:00Z", "end_time": "2030-05-18T11:00:00Z", "client_id": str(uuid4()), "details": "x"}
    r = await client.post("/bookings", json=body)
    assert r.status_code == 201, r.text
    print(r.json())
    r2 = await client.post("/bookings", json=body)
    assert r2.status_code == 409, r2.text
    print(r2.json())
    bid = r.json()["booking_id"]
    r = await client.get(f"/bookings/{bid}/history")
    print(r.json())
    r = await client.get(f"/resources/{rid}/availability?from=2030-05-18T00:00:00Z&to=2030-05-19T00:00:00Z")
    print(r.json())
