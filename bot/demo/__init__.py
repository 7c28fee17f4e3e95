"""`carebot demo`: the whole bot in a browser, with no token and no Telegram.

The real app, wired as `carebot run` wires it, long-polls the built-in Bot API stand-in over
HTTP on this machine; a page (plain HTML, CSS and JavaScript shipped in `static/`) shows the
customers', the staff group's and the masters' chats, lets one write, tap and share as each of
them, and moves the demo's clock, which runs the planners and the sender as `carebot tick --now`
does. `world.py` keeps the people and what their chats show, `web.py` serves the page, `run.py`
starts it all, `seed.py` gives it a history.
"""
