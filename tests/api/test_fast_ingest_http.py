"""``POST /v1/events`` is served by a pure ASGI layer when all goes well and by the route otherwise (real HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import orjson

from tests.api.conftest import Server
from tests.support import cloudevent

PROBLEM = "application/problem+json"


def _chunks(body: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _stored(client: httpx.Client, event_id: str) -> bool:
    items = client.get("/v1/events", params={"limit": 1000}).json()["items"]
    return any(item["id"] == event_id for item in items)


def test_a_good_event_answers_plain_json_with_its_length(server: Server) -> None:
    with server.client() as client:
        response = client.post("/v1/events", json=cloudevent("fast-1"))
        assert response.status_code == 202
        assert response.headers["content-type"] == "application/json"
        assert int(response.headers["content-length"]) == len(response.content)
        assert response.json()["status"] == "accepted" and _stored(client, "fast-1")


def test_a_body_sent_in_chunks_without_a_length_is_joined(server: Server) -> None:
    body = orjson.dumps(cloudevent("fast-chunked-1", data={"note": "y" * 5000}))
    with server.client() as client:
        # A generator makes httpx use chunked transfer encoding: several body messages, no content-length.
        response = client.post("/v1/events", content=_chunks(body, 700), headers={"content-type": "application/json"})
        assert response.status_code == 202, response.text
        assert _stored(client, "fast-chunked-1")


def test_a_streamed_body_over_the_limit_is_413_and_its_head_kept(server: Server) -> None:
    body = orjson.dumps(cloudevent("fast-big-1", data={"blob": "x" * (1024 * 1024)}))
    with server.client() as client:
        response = client.post(
            "/v1/events", content=_chunks(body, 64 * 1024), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413 and response.headers["content-type"] == PROBLEM
        letter = client.get(f"/v1/dead-letters/{response.json()['dead_letter_id']}").json()
        assert letter["truncated"] is True and letter["channel"] == "api"
        assert letter["body"].startswith('{"specversion"')
        assert not _stored(client, "fast-big-1")


def test_a_bad_event_sent_in_chunks_is_dead_lettered_whole(server: Server) -> None:
    raw = cloudevent("fast-bad-1")
    del raw["type"]
    body = orjson.dumps(raw)
    with server.client() as client:
        response = client.post("/v1/events", content=_chunks(body, 20), headers={"content-type": "application/json"})
        assert response.status_code == 400 and response.headers["content-type"] == PROBLEM
        assert [e["path"] for e in response.json()["errors"]] == ["$.type"]
        letter = client.get(f"/v1/dead-letters/{response.json()['dead_letter_id']}").json()
        assert orjson.loads(letter["body"]) == raw


def test_the_latency_metric_names_the_route_on_both_paths(server: Server) -> None:
    with server.client() as client:
        assert client.post("/v1/events", json=cloudevent("fast-metric-1")).status_code == 202
        assert client.post("/v1/events", json={"specversion": "1.0"}).status_code == 400
        text = client.get("/metrics").text
        for status in ("202", "400"):
            assert f'method="POST",route="/v1/events",status="{status}"' in text, status
        assert "unmatched" not in text


def test_a_burst_with_repeats_stores_each_event_once(server: Server) -> None:
    ids = [f"fast-burst-{n}" for n in range(60)]

    async def burst() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {server.token}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
            # Every event three times, all at once: the copies race each other into the same group commits.
            return await asyncio.gather(*(client.post("/v1/events", json=cloudevent(i)) for i in ids * 3))

    responses = asyncio.run(burst())
    by_id: dict[str, list[httpx.Response]] = {}
    for response in responses:
        by_id.setdefault(response.json()["id"], []).append(response)
    assert sorted(by_id) == sorted(ids)
    for event_id, answers in by_id.items():
        assert sorted(r.status_code for r in answers) == [200, 200, 202], event_id
        assert len({r.json()["received_at"] for r in answers}) == 1, event_id
    with server.client() as client:
        stored = [i["id"] for i in client.get("/v1/events", params={"limit": 1000}).json()["items"]]
        assert sorted(i for i in stored if i.startswith("fast-burst-")) == sorted(ids)
