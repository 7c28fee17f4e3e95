"""Control groups and experiments: which campaign an outbox row belongs to, and which arm its
customer falls into ("a", "b" or "holdout").

The arm is a function of (customer id, campaign, the business file's salt) alone: the first
64 bits of a SHA-256 of them, read as a number in [0, 1), below the campaign's holdout share
puts the customer in the holdout; a second 64 bits split the rest between the two variants, half
and half (or all to the winner the owner chose). No random state: the same customer lands in the
same arm of the same campaign in every run, every process and every restart (a birthday's
reminder and greeting, a reactivation's two steps, go to the same arm), and each campaign draws
its own arms (a broadcast is a campaign of its own, `broadcast:<id>`).

Applied in one place, `OutboxRepo.plan`, to the rows every planner writes; recorded on the row
(`outbox.campaign`, `outbox.arm`). A held-out row is written and closed at once (skipped, error
code `holdout`): it is never sent, and counts nowhere as contacted. Variant b changes the text
and/or the coupon value when the row is sent (`variant_of`, used by `bot.outbox.compose`).

The welcome coupon is no campaign: it is the promise onboarding makes, given in reply, with no
outbox row; nobody is held out of it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from bot.business import Campaigns, Variant
from bot.db.campaign_results import HOLDOUT, CampaignResultsRepo, Planned
from bot.db.models import OutboxKind, OutboxMessage

A, B = "a", "b"
ARMS = (A, B, HOLDOUT)

# A row's campaign by its key's first part (the planners' keys: `birthday:<customer>:<year>`,
# `reactivation:<customer>:<visit>:<step>`, `broadcast:<id>:<customer>`, …).
_BY_PREFIX = {
    "birthday": "birthday",
    "birthday_soon": "birthday",  # the reminder goes with the greeting: a held-out one gets neither
    "holiday": "holiday",
    "thanks": "thanks",
    "expiry": "expiry",
    "due_offer": "due_offer",
    "reactivation": "reactivation",
}
CAMPAIGNS = ("birthday", "holiday", "thanks", "expiry", "due_offer", "reactivation")

# The text a variant's template replaces (a campaign's other messages keep theirs).
MAIN_TEMPLATE = {
    "birthday": "birthday_greeting",
    "thanks": "thanks_offer",
    "expiry": "coupon_expiring",
    "due_offer": "due_offer",
    "reactivation": "reactivation",
}


def campaign_of(key: str) -> str | None:
    """The campaign of an outbox row's key; None for a row of no campaign (a survey, a reminder)."""
    head, _, rest = key.partition(":")
    if head == "broadcast":
        broadcast_id = rest.partition(":")[0]
        return f"broadcast:{broadcast_id}" if broadcast_id.isdigit() else None
    return _BY_PREFIX.get(head)


def draws(customer_id: int, campaign: str, salt: str) -> tuple[float, float]:
    """Two numbers in [0, 1) fixed by (customer, campaign, salt): the holdout's and the variant's."""
    digest = hashlib.sha256(f"{salt}\x1f{campaign}\x1f{customer_id}".encode()).digest()
    return (
        int.from_bytes(digest[:8], "big") / 2**64,
        int.from_bytes(digest[8:16], "big") / 2**64,
    )


def arm_of(
    customer_id: int, campaign: str, rules: Campaigns, winners: dict[str, str] | None = None
) -> str:
    """The customer's arm of this campaign (see the module's docstring)."""
    held, split = draws(customer_id, campaign, rules.salt)
    if held < rules.holdout_of(campaign):
        return HOLDOUT
    if rules.rule(campaign).b is None:
        return A
    winner = (winners or {}).get(campaign)
    if winner in (A, B):
        return winner
    return A if split < 0.5 else B


class CampaignAssigner:
    """`Database.assign`: the arms of the rows a planner just wrote, recorded set-wise (one
    UPDATE per campaign and arm, whatever the number of rows)."""

    def __init__(self, rules: Campaigns) -> None:
        self.rules = rules

    async def __call__(self, repo: CampaignResultsRepo, planned: list[Planned]) -> None:
        found: dict[str, list[tuple[int, int]]] = {}
        for row in planned:
            if row.kind != OutboxKind.MARKETING or row.customer_id is None:
                continue
            campaign = campaign_of(row.key)
            if campaign is not None:
                found.setdefault(campaign, []).append((row.id, row.customer_id))
        if not found:
            return
        variants = any(self.rules.rule(c).b is not None for c in found)
        winners = await repo.winners() if variants else {}
        for campaign, rows in found.items():
            arms: dict[str, list[int]] = {}
            for row_id, customer_id in rows:
                arm = arm_of(customer_id, campaign, self.rules, winners)
                arms.setdefault(arm, []).append(row_id)
            for arm, ids in arms.items():
                await repo.record_arms(campaign, arm, ids)


def variant_of(row: OutboxMessage, rules: Campaigns) -> Variant | None:
    """The variant b a row carries (its customer's arm is b and the campaign has one)."""
    if row.arm != B or row.campaign is None:
        return None
    return rules.rule(row.campaign).b


def shown_template(row: OutboxMessage, rules: Campaigns) -> str:
    """The template a row is rendered with: variant b's text in place of the campaign's main one."""
    variant = variant_of(row, rules)
    if variant is None or variant.template is None or row.campaign is None:
        return row.template
    return variant.template if MAIN_TEMPLATE.get(row.campaign) == row.template else row.template


def coupon_rule(row: OutboxMessage, rules: Campaigns, rule: dict[str, Any]) -> dict[str, Any]:
    """The coupon a row gives (`data.coupon`), worth variant b's value when it has one."""
    variant = variant_of(row, rules)
    if variant is None or (variant.percent is None and variant.amount is None):
        return rule
    return {**rule, "percent": variant.percent, "amount": variant.amount}
