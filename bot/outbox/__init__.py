"""Everything the bot sends on its own initiative: planners fill the outbox, one sender empties it."""
SERVICE = "service"
MARKETING = "marketing"
RELAY = "relay"  # what a customer or staff member wrote, relayed to the other side
