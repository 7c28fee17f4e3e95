"""Phone numbers: parsed with `phonenumbers` (Google's libphonenumber), stored as E.164."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "RU"


def normalize_phone(raw: str, region: str = DEFAULT_REGION) -> str | None:
    """E.164 form of a real phone number, or None when `raw` is not one.

    Telegram hands over contacts as bare digits ("79161234567"); people type "8 916 …" or
    "+7 (916) …". A bare international number without "+" is tried with "+" first.
    """
    text = raw.strip()
    if not text or len(text) > 32 or any(c.isalpha() for c in text):
        return None
    candidates = [text]
    digits = "".join(c for c in text if c.isdigit())
    if not text.startswith("+") and len(digits) >= 11:
        candidates.insert(0, "+" + digits)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def looks_like_phone(raw: str) -> bool:
    return normalize_phone(raw) is not None
