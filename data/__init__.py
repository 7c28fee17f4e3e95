"""The committed example business file: the installed package carries this folder as `bot.data`
(pyproject.toml) and runs it when the folder the bot runs in has no data/business.toml and
BUSINESS_FILE is unset (bot/business.py). The bot writes its own files (the SQLite database, the
key) to data/ of the folder it runs in, and reads the owner's data/templates/ from there."""
