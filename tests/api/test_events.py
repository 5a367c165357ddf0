"""Server-Sent Events read by a real aiohttp ClientSession, as a dashboard would."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from aioqueue.engine import Registry
from tests.helpers.sse import next_event


@pytest.fixture
def stepped():
    """A process that moves on only when the test says so: 25, 50, 75 %, then ends."""
    registry = Registry()
    gates = {n: asyncio.Event() for n in (25, 50, 75, 100)}

    @registry.process("steps")
    async def steps(ctx, data):
        for percent in (25, 50, 75):
            await gates[percent].wait()
            await ctx.progress(percent, f"at {percent}")
        await gates[100].wait()
        return "done"

    yield registry, gates
    for gate in gates.values():  # let an unfinished job end, so the server stops at once
        gate.set()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as session:
        yield session


async def _submit(client, process="steps", data=None) -> str:
    return (await (await client.post(f"/async-process/?process={process}", json=data)).json())["id"]


async def test_a_job_stream_sends_each_change_and_ends_after_the_terminal_one(
    make_client, stepped, session
):
    registry, gates = stepped
    client = await make_client(registry)
    job_id = await _submit(client)
    async with session.get(client.make_url(f"/async-process/{job_id}/events")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        first = await next_event(resp)
        assert first["event"] == "job"
        assert first["data"]["id"] == job_id
        seen = [first]
        if first["data"]["state"] == "queued":
            seen.append(await next_event(resp))
        assert seen[-1]["data"]["state"] == "running"
        for percent in (25, 50, 75):
            gates[percent].set()
            event = await next_event(resp)
            assert event["data"]["progress"] == {"percent": percent, "message": f"at {percent}"}
            seen.append(event)
        gates[100].set()
        last = await next_event(resp)
        assert last["id"] == "end"
        assert last["data"]["state"] == "success"
        assert last["data"]["result"] == "done"
        assert await next_event(resp) is None  # the server closed the stream
    assert "end" not in {e["id"] for e in seen}  # only the terminal event says so


async def test_an_ended_job_gives_one_event_and_closes(client, session):
    job_id = await _submit(client, "echo", 5)
    await client.get(f"/async-process/{job_id}?return_timeout=5")
    async with session.get(client.make_url(f"/async-process/{job_id}/events")) as resp:
        event = await next_event(resp)
        assert (event["id"], event["data"]["state"], event["data"]["result"]) == ("end", "success", 5)
        assert await next_event(resp) is None


async def test_reconnecting_after_the_end_is_204_so_eventsource_stops(client, session):
    job_id = await _submit(client, "echo", 5)
    await client.get(f"/async-process/{job_id}?return_timeout=5")
    url = client.make_url(f"/async-process/{job_id}/events")
    async with session.get(url, headers={"Last-Event-ID": "end"}) as resp:
        assert resp.status == 204


async def test_last_event_id_skips_what_the_reader_has_seen(make_client, stepped, session):
    registry, gates = stepped
    client = await make_client(registry)
    job_id = await _submit(client)
    url = client.make_url(f"/async-process/{job_id}/events")
    async with session.get(url) as resp:
        while (await next_event(resp))["data"]["state"] != "running":
            pass
        gates[25].set()
        seen = await next_event(resp)
        assert seen["data"]["progress"]["percent"] == 25
        # the id that follows the change (once the change log was read past it)
        marked = await next_event(resp, ids=True)
        assert "data" not in marked and marked["id"] != seen["id"]
    async with session.get(url, headers={"Last-Event-ID": marked["id"]}) as resp:
        gates[50].set()
        event = await next_event(resp)
        # no repeat of the 25 % the reader already had: the first event is the next change
        assert event["data"]["progress"]["percent"] == 50
        assert "data" not in await next_event(resp, ids=True)  # 50 % is stored and read
    async with session.get(url, headers={"Last-Event-ID": seen["id"]}) as resp:
        # an id from before a change: the reader gets the job as it stands now
        event = await next_event(resp)
        assert event["data"]["progress"]["percent"] == 50
    gates[75].set()
    gates[100].set()
    async with session.get(url, headers={"Last-Event-ID": "0.1"}) as resp:
        # an id this server never wrote: told so, then the job as it stands
        assert (await next_event(resp))["event"] == "reset"
        event = await next_event(resp)
        assert event["data"]["state"] in ("running", "success")


async def test_the_global_stream_carries_every_job(client, session):
    async with session.get(client.make_url("/events")) as resp:
        assert resp.status == 200
        ids = {await _submit(client, "echo", n) for n in range(3)}
        ended: set[str] = set()
        while ended != ids:
            event = await asyncio.wait_for(next_event(resp), 5)
            assert event["data"]["id"] in ids
            if event["data"]["state"] == "success":
                ended.add(event["data"]["id"])


async def test_streams_end_when_the_server_stops(make_client, stepped, session):
    registry, _ = stepped
    client = await make_client(registry, server={"shutdown_grace_s": 0.05})
    job_id = await _submit(client)
    async with session.get(client.make_url("/events")) as everything, \
            session.get(client.make_url(f"/async-process/{job_id}/events")) as one:
        await next_event(one)
        await client.close()
        for stream in (one, everything):
            for _ in range(10):  # a change or two may still be on the way, then the end
                if await asyncio.wait_for(next_event(stream), 5) is None:
                    break
            else:
                pytest.fail("the stream did not end with the server")


@pytest.mark.parametrize("job_id", ["0" * 32, "nothex"])
async def test_events_of_an_unknown_job_are_404(client, job_id):
    resp = await client.get(f"/async-process/{job_id}/events")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
