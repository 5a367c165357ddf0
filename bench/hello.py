"""The ceiling: an aiohttp server that reads the request body and answers a small JSON body."""

import sys

from aiohttp import web

BODY = b'{"hello":"world"}'


async def hello(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
