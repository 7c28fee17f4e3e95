"""The demo's page and its small JSON API, on aiohttp, listening on this machine only.

GET / and /static/… serve the page (every asset ships in the package: nothing is fetched from
the internet, and the Content-Security-Policy says so to the browser); /healthz and /metrics are
the bot's own, as `carebot run --http` serves them (handlers/ops.py); /api/state is everything
the page draws, /api/events pushes each change as it happens (server-sent events); the POSTs are
what a person does in a chat, and moving the clock. A request from another site's page (an
Origin that is not this one, or a Host that is not this machine's name) is refused, so only this
page drives the demo.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.demo.world import GROUP_ID, Refused

if TYPE_CHECKING:
    from bot.demo.run import Demo

log = logging.getLogger("carebot.demo")

STATIC = files("bot.demo") / "static"
CONTENT_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
LOCAL_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
STEPS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
PING_SECONDS = 15.0
PHOTO_UPLOAD_LIMIT = 11 * 1024 * 1024
DEMO: web.AppKey[Demo] = web.AppKey("demo")


def web_app(demo: Demo) -> web.Application:
    app = web.Application(client_max_size=PHOTO_UPLOAD_LIMIT, middlewares=[_guard])
    app[DEMO] = demo
    routes = [
        web.get("/", _index),
        web.get("/static/{name}", _static),
        web.get("/api/state", _state),
        web.get("/api/events", _events),
        web.get("/api/file/{file_id}", _file),
        web.post("/api/customers", _add_customer),
        web.post("/api/chats/{chat}/text", _text),
        web.post("/api/chats/{chat}/press", _press),
        web.post("/api/chats/{chat}/contact", _contact),
        web.post("/api/chats/{chat}/photo", _photo),
        web.post("/api/chats/{chat}/link", _link),
        web.post("/api/topics", _topics),
        web.post("/api/clock", _clock),
    ]
    app.add_routes(routes)
    demo.app.ops.register(app)  # the bot's own /healthz and /metrics, as on `carebot run --http`
    return app


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if request.host.rsplit(":", 1)[0] not in LOCAL_NAMES:  # a name rebound to this machine
        return web.json_response({"error": "open the demo as 127.0.0.1 or localhost"}, status=403)
    if request.method != "GET" and origin and origin != f"{request.scheme}://{request.host}":
        return web.json_response({"error": "only the demo's own page drives it"}, status=403)
    try:
        response = await handler(request)
    except Refused as refusal:
        response = web.json_response({"error": str(refusal)}, status=400)
    response.headers.update(SECURITY_HEADERS)
    return response


def _demo(request: web.Request) -> Demo:
    return request.app[DEMO]


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Refused("the request is not JSON") from None
    if not isinstance(body, dict):
        raise Refused("the request is not a JSON object")
    return body


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Refused(f"{what} is not a number")
    try:
        return int(value)
    except ValueError:
        raise Refused(f"{what} is not a number") from None


def _optional_int(value: Any, what: str) -> int | None:
    return None if value in (None, "") else _int(value, what)


def _chat(request: web.Request) -> int:
    return _int(request.match_info["chat"], "the chat")


# ---- the page ----------------------------------------------------------------------------------


async def _index(request: web.Request) -> web.StreamResponse:
    return _asset("index.html")


async def _static(request: web.Request) -> web.StreamResponse:
    return _asset(request.match_info["name"])


def _asset(name: str) -> web.StreamResponse:
    suffix = name[name.rfind(".") :] if "." in name else ""
    resource = STATIC / name
    if "/" in name or name.startswith(".") or suffix not in CONTENT_TYPES or not resource.is_file():
        raise web.HTTPNotFound()
    return web.Response(
        body=resource.read_bytes(),
        content_type=CONTENT_TYPES[suffix],
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )


async def _state(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _demo(request).state())


async def _events(request: web.Request) -> web.StreamResponse:
    demo = _demo(request)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    queue = demo.world.hub.subscribe()
    try:
        await response.write(b": connected\n\n")
        while not demo.stopping.is_set():
            try:
                event = await asyncio.wait_for(queue.get(), PING_SECONDS)
            except TimeoutError:
                await response.write(b": ping\n\n")
                continue
            data = json.dumps(event, ensure_ascii=False)
            await response.write(f"data: {data}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        demo.world.hub.unsubscribe(queue)
    return response


async def _file(request: web.Request) -> web.StreamResponse:
    data = _demo(request).server.files.get(request.match_info["file_id"])
    if data is None:
        raise web.HTTPNotFound()
    if data.startswith(b"\x89PNG"):
        return web.Response(body=data, content_type="image/png")
    if data.startswith(b"\xff\xd8\xff"):
        return web.Response(body=data, content_type="image/jpeg")
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": "attachment"},
    )


# ---- what people do ----------------------------------------------------------------------------


async def _add_customer(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    customer = _demo(request).world.add_customer(
        str(body.get("name") or ""), str(body.get("lang") or "")
    )
    return web.json_response({"id": customer.id})


async def _text(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    message = await _demo(request).world.write(
        _chat(request),
        str(body.get("text") or ""),
        reply_to=_optional_int(body.get("reply_to"), "the message replied to"),
        thread=_optional_int(body.get("thread"), "the topic"),
    )
    return web.json_response({"id": message["message_id"]})


async def _press(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    await _demo(request).world.press(
        _chat(request), _int(body.get("message_id"), "the message"), str(body.get("data") or "")
    )
    return web.json_response({"ok": True})


async def _contact(request: web.Request) -> web.StreamResponse:
    message = await _demo(request).world.share_contact(_chat(request))
    return web.json_response({"id": message["message_id"]})


async def _photo(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    upload = form.get("photo")
    if upload is None or not hasattr(upload, "file"):
        raise Refused("choose a photo first")
    data = upload.file.read()
    message = await _demo(request).world.send_photo(
        _chat(request),
        data,
        str(form.get("caption") or ""),
        reply_to=_optional_int(form.get("reply_to"), "the message replied to"),
        thread=_optional_int(form.get("thread"), "the topic"),
    )
    return web.json_response({"id": message["message_id"]})


async def _link(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    message = await _demo(request).world.open_link(_chat(request), str(body.get("url") or ""))
    return web.json_response({"id": message["message_id"]})


async def _topics(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    _demo(request).world.set_topics(bool(body.get("on")))
    return web.json_response({"ok": True, "chat": GROUP_ID})


async def _clock(request: web.Request) -> web.StreamResponse:
    demo = _demo(request)
    body = await _body(request)
    step, to = body.get("add"), body.get("to")
    if step is not None:
        if step not in STEPS:
            raise Refused("move the clock by an hour, a day or a week")
        result = await demo.move_clock(demo.clock.now() + STEPS[str(step)])
    elif isinstance(to, str):
        try:
            moment = datetime.fromisoformat(to)
        except ValueError:
            raise Refused(f"{to!r} is not a date and time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=demo.tz)
        result = await demo.move_clock(moment)
    else:
        raise Refused("say how far to move the clock")
    return web.json_response(result)
