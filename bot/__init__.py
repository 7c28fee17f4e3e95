"""carebot: a Telegram bot that turns one-time buyers into repeat customers.

Importing the package changes nothing outside it: the lazy build of aiogram's types
(bot/lazy_types.py) is installed by the process's entry point (`carebot`, bot/cli.py main).
What the package ships (templates, the example business file, migrations) is found with
importlib.resources, never through a source checkout.
"""
