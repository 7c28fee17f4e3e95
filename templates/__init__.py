"""The bundled message templates, one folder per language: the installed package carries them as
`bot.templates` (pyproject.toml), found with importlib.resources (bot/rendering.py)."""
