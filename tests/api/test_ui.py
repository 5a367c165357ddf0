"""GET /ui: the dashboard's files, and the page itself in a real headless Chromium."""

from __future__ import annotations

import asyncio
import json

import pytest
from tests.browser import CHROMIUM, open_page
from tests.support import needs_route

from aioqueue.engine import Registry

ANY_ID = "0" * 32

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")


async def test_the_page_and_its_files_are_served_with_a_strict_policy(client):
    page = await client.get("/ui")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    html = await page.text()
    assert 'src="ui/app.js"' in html and 'href="ui/app.css"' in html
    script = await client.get("/ui/app.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert (await client.get("/ui/app.css")).status == 200
    # with a slash: to the page, where its relative links resolve
    slash = await client.get("/ui/", allow_redirects=False)
    assert slash.status == 308 and slash.headers["Location"] == "/ui"
    assert (await client.get("/ui/")).status == 200
    assert (await client.get("/ui/secrets.txt")).status == 404
    assert (await client.get("/ui/..%2Fapi.py")).status == 404


def _steps_registry() -> tuple[Registry, list[asyncio.Event]]:
    registry = Registry()
    gates = [asyncio.Event(), asyncio.Event()]

    @registry.process("steps", description="Two reported steps, each held by the test.")
    async def steps(ctx, data):
        await ctx.progress(10, "first step")
        await gates[0].wait()
        await ctx.progress(60, "second step")
        await gates[1].wait()
        return {"done": True}

    @registry.process("forever", description="Runs until cancelled.")
    async def forever(ctx, data):
        await ctx.progress(5, "started")
        await asyncio.Event().wait()

    return registry, gates


SUBMIT = """(() => {
  document.querySelector('#process').value = %s;
  document.querySelector('#input').value = '{"n": 1}';
  document.querySelector('#submit').click();
  return true;
})()"""


def _row(process: str) -> str:
    return f"document.querySelector('#jobs tr[data-process={process}]')"


async def _submit_from_the_page(page, process: str) -> str:
    """Submit once the page follows the events, so that what the test sees next came on
    the stream (what moved before it opened is read again: the test below)."""
    await page.wait_for(f"document.querySelector('#process option[value={process}]') !== null")
    await page.wait_for("document.querySelector('#mode').textContent === 'live'")
    await page.evaluate(SUBMIT % json.dumps(process))
    return await page.wait_for(f"{_row(process)}?.dataset.id")


@needs_chromium
async def test_a_job_submitted_on_the_page_shows_its_bar_moving_to_the_end(make_client):
    registry, gates = _steps_registry()
    client = await make_client(registry)
    async with open_page() as page:
        await page.goto(str(client.make_url("/ui")))
        job_id = await _submit_from_the_page(page, "steps")
        bar = f"{_row('steps')}?.querySelector('.bar')"
        await page.wait_for(f"{bar}?.dataset.percent === '10'")
        assert await page.evaluate(f"{bar}.firstChild.style.width") == "10%"
        assert await page.evaluate(f"{_row('steps')}.querySelector('.message').textContent") \
            == "first step"
        gates[0].set()
        await page.wait_for(f"{bar}?.dataset.percent === '60'")
        gates[1].set()
        await page.wait_for(f"{_row('steps')}?.dataset.state === 'success'")
        assert await page.evaluate(f"{bar}.dataset.percent") == "100"
        # the detail view shows the result
        await page.evaluate(f"{_row('steps')}.click()")
        await page.wait_for("!document.querySelector('#detail').hidden")
        assert await page.evaluate("document.querySelector('#detail-id').textContent") == job_id
        outcome = await page.wait_for("document.querySelector('#outcome').textContent")
        assert json.loads(outcome) == {"done": True}
        assert await page.evaluate("document.querySelector('#cancel').disabled") is True
        # filters hide what does not match
        await page.evaluate("""(() => { const f = document.querySelector('#filter-state');
            f.value = 'failure'; f.dispatchEvent(new Event('change')); return true; })()""")
        await page.wait_for(f"{_row('steps')} === null")
        assert page.errors == []


@needs_chromium
@needs_route("POST", f"/async-process/{ANY_ID}/cancel")
async def test_the_cancel_button_ends_a_running_job(make_client):
    registry, _ = _steps_registry()
    client = await make_client(registry)
    async with open_page() as page:
        await page.goto(str(client.make_url("/ui")))
        await _submit_from_the_page(page, "forever")
        await page.wait_for(f"{_row('forever')}?.dataset.state === 'running'")
        await page.evaluate(f"{_row('forever')}.click()")
        await page.wait_for("!document.querySelector('#cancel').disabled")
        await page.evaluate("document.querySelector('#cancel').click()")
        await page.wait_for(f"{_row('forever')}?.dataset.state === 'failure'")
        outcome = await page.wait_for("document.querySelector('#outcome').textContent")
        assert json.loads(outcome)["code"] == "cancelled"


async def _stand_in(aiohttp_server, routes: list[tuple[str, str, object]]):
    """A server with the dashboard's files and ``routes`` in place of aioqueue's API, to
    decide what the page's requests get and when."""
    from aiohttp import web

    from aioqueue.http import ui

    app = web.Application()
    ui.add_routes(app)
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    return await aiohttp_server(app)


@needs_chromium
async def test_live_mode_follows_the_event_stream_and_sends_the_token(aiohttp_server):
    """The page against a stand-in server that has /events: rows come from the stream, and
    the token typed on the page goes out as a bearer token."""
    from aiohttp import web

    seen_tokens: list[str | None] = []
    send, finish = asyncio.Event(), asyncio.Event()
    job = {"id": "e" * 32, "process": "remote", "state": "running",
           "progress": {"percent": 30, "message": "streamed"}, "result": None, "error": None,
           "attempts": 1, "max_attempts": 1, "priority": 0,
           "created_at": "2026-11-25T17:00:00.000Z", "scheduled_at": "2026-11-25T17:00:00.000Z",
           "started_at": "2026-11-25T17:00:00.000Z", "ended_at": None, "links": {}}

    async def processes(request):
        return web.json_response({"processes": [{"name": "remote", "description": ""}]})

    async def listing(request):
        seen_tokens.append(request.headers.get("Authorization"))
        return web.json_response({"jobs": [], "next": None})

    async def events(request):
        seen_tokens.append(request.headers.get("Authorization"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await send.wait()
        await resp.write(b"data: " + json.dumps(job).encode() + b"\n\n")
        await finish.wait()
        done = {**job, "state": "success", "result": 42, "progress": None,
                "ended_at": "2026-11-25T17:00:01.000Z"}
        await resp.write(b"event: job\ndata: " + json.dumps(done).encode() + b"\n\n")
        await asyncio.Event().wait()  # a real stream stays open
        return resp

    server = await _stand_in(aiohttp_server, [("GET", "/processes", processes),
                                              ("GET", "/async-process/", listing),
                                              ("GET", "/events", events)])
    async with open_page() as page:
        await page.goto(str(server.make_url("/ui")))
        await page.wait_for("document.querySelector('#mode').textContent === 'live'")
        await page.evaluate("""(() => { document.querySelector('#token').value = 's3cret';
            document.querySelector('#token-form').requestSubmit(); return true; })()""")
        await page.wait_for("localStorage.getItem('aioqueue.token') === 's3cret'")
        send.set()
        await page.wait_for(f"{_row('remote')}?.dataset.state === 'running'")
        assert await page.evaluate(f"{_row('remote')}.querySelector('.bar').dataset.percent") \
            == "30"
        finish.set()
        await page.wait_for(f"{_row('remote')}?.dataset.state === 'success'")
        assert await page.evaluate(f"{_row('remote')}.querySelector('.bar').dataset.percent") \
            == "100"
    assert seen_tokens[0] is None
    assert "Bearer s3cret" in seen_tokens


@needs_chromium
async def test_jobs_that_moved_before_the_stream_opened_are_read_again_once_it_is_live(
        aiohttp_server):
    """A change made before the page's stream opened is never sent on it: a listed job
    that ended meanwhile, and a job submitted from the page that reported progress, show
    their current state once the page is live, not what the list or the submit answered."""
    from aiohttp import web

    def job(job_id: str, process: str, state: str, percent: int | None) -> dict:
        return {"id": job_id, "process": process, "state": state,
                "progress": None if percent is None else {"percent": percent, "message": ""},
                "result": 42 if state == "success" else None, "error": None,
                "attempts": 1, "max_attempts": 1, "priority": 0,
                "created_at": "2026-11-30T07:00:00.000Z",
                "scheduled_at": "2026-11-30T07:00:00.000Z", "started_at": None,
                "ended_at": "2026-11-30T07:00:01.000Z" if state == "success" else None,
                "links": {}}

    listed, submitted = "a" * 32, "b" * 32
    now = {listed: job(listed, "listed", "success", None),
           submitted: job(submitted, "posted", "running", 70)}
    open_stream = asyncio.Event()

    async def processes(request):
        return web.json_response({"processes": [{"name": "posted", "description": ""}]})

    async def listing(request):
        return web.json_response({"jobs": [job(listed, "listed", "running", 30)], "next": None})

    async def post(request):
        return web.json_response(job(submitted, "posted", "queued", None), status=202)

    async def get(request):
        return web.json_response(now[request.match_info["id"]])

    async def events(request):
        await open_stream.wait()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await asyncio.Event().wait()  # open, and nothing more happens
        return resp

    server = await _stand_in(aiohttp_server, [("GET", "/processes", processes),
                                              ("GET", "/async-process/", listing),
                                              ("POST", "/async-process/", post),
                                              ("GET", "/async-process/{id}", get),
                                              ("GET", "/events", events)])
    async with open_page() as page:
        await page.goto(str(server.make_url("/ui")))
        await page.wait_for(f"{_row('listed')}?.dataset.state === 'running'")
        await page.wait_for("document.querySelector('#process option[value=posted]') !== null")
        await page.evaluate(SUBMIT % json.dumps("posted"))
        await page.wait_for(f"{_row('posted')}?.dataset.state === 'queued'")
        open_stream.set()
        await page.wait_for("document.querySelector('#mode').textContent === 'live'")
        await page.wait_for(f"{_row('listed')}?.dataset.state === 'success'")
        await page.wait_for(f"{_row('posted')}?.querySelector('.bar')?.dataset.percent === '70'")
        assert page.errors == []


@needs_chromium
async def test_the_page_lists_schedules_triggers_one_and_shows_a_jobs_parents(client):
    await client.put("/schedules/hourly", json={"process": "echo", "every_s": 3600, "data": 5})
    async with open_page() as page:
        await page.goto(str(client.make_url("/ui")))
        row = "document.querySelector('#schedules tr[data-name=hourly]')"
        await page.wait_for(f"{row} !== null")
        assert "every 3600 s" in await page.evaluate(f"{row}.textContent")
        await page.evaluate(f"{row}.querySelector('button[data-action=trigger]').click()")
        job_id = await page.wait_for(f"{_row('echo')}?.dataset.id")
        answer = await client.post(f"/async-process/?process=echo&depends_on={job_id}", json=1)
        child = (await answer.json())["id"]
        await page.wait_for(f"document.querySelector('#jobs tr[data-id=\"{child}\"]') !== null")
        await page.evaluate(f"document.querySelector('#jobs tr[data-id=\"{child}\"]').click()")
        parents = "document.querySelector('#detail-fields dd[data-field=parents]')?.textContent"
        assert await page.wait_for(parents) == job_id
        assert page.errors == []
