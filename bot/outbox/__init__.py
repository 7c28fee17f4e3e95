"""Everything the bot sends on its own initiative: planners fill the outbox, one sender empties it."""
SERVICE = "service"
MARKETING = "marketing"
