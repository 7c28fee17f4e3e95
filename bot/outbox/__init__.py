"""Everything the bot sends on its own initiative: planners fill the outbox, one sender empties it."""

from bot.db.models import OutboxKind

SERVICE = OutboxKind.SERVICE
MARKETING = OutboxKind.MARKETING
RELAY = OutboxKind.RELAY  # what a customer or staff member wrote, relayed to the other side
