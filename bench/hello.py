"""The ceiling: an aiohttp server that reads the request body and answers a small JSON body.

    python bench/hello.py PORT [asyncio|uvloop]
"""

import sys

from aiohttp import web

BODY = b'{"hello":"world"}'


async def hello(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    loop = None
    if sys.argv[2:] == ["uvloop"]:
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
                loop=loop)


if __name__ == "__main__":
    main()
