"""What `/metrics` shows (Prometheus' text format, prometheus-client): one set of metrics per
process, in the client's default registry. Each instance is scraped on its own; sum them in
Prometheus (`sum by (kind) (rate(carebot_outbox_sent_total[5m]))`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UPDATES = Counter("carebot_updates_handled", "Telegram updates handled", ["type"])
UPDATES_DUPLICATE = Counter(
    "carebot_updates_duplicate",
    "Updates Telegram sent again (a retried webhook), not handled twice",
)
REPLIES = Counter(
    "carebot_replies_sent",
    "Messages sent in reply to a person (not through the outbox), by Bot API method",
    ["method"],
)
OUTBOX_SENT = Counter(
    "carebot_outbox_sent",
    "Outbox messages delivered, by kind (service, relay, marketing)",
    ["kind"],
)
OUTBOX_FAILED = Counter(
    "carebot_outbox_failed", "Outbox messages that will never go (failed, blocked)", ["kind"]
)
THROTTLED = Counter("carebot_telegram_429", "Bot API calls answered 429 (retry_after)")
RETRIES = Counter(
    "carebot_telegram_retries", "Bot API calls tried again (a 5xx, a network fault, a 429)"
)
QUEUE_DEPTH = Gauge("carebot_outbox_queue_depth", "Outbox messages due now and not yet sent")
QUEUE_AGE = Gauge(
    "carebot_outbox_queue_age_seconds", "How long the oldest message due has waited (0: none)"
)
PLANNER_SECONDS = Histogram(
    "carebot_planner_duration_seconds",
    "How long one planner took",
    ["planner"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
PLANNER_RUNS = Counter(
    "carebot_planner_runs", "Planner runs (every planner once) made by this instance"
)
LEADER = Gauge("carebot_planner_leader", "1 while this instance is the one running the planners")
