"""What a new password must be (NIST SP 800-63B §3.1.1.2): at least 8 characters after NFKC, at most 256,
not whitespace alone, not one of the 30,000 most common passwords, not the account's own email or name.
No composition rules (digits, symbols, cases): NIST advises against them."""

from __future__ import annotations

from functools import lru_cache

from common.credentials import normalize_password

MIN_LENGTH = 8
MAX_LENGTH = 256  # NIST asks for at least 64; scrypt's cost does not grow with the length


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The common-password list zxcvbn ships (lower case, from real leaks), loaded once on first use."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # ~0.8 MB of lists: only when a password is set

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """Why `password` may not be used, in words for the user, or None when it is acceptable."""
    password = normalize_password(password)
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if not password.strip():
        return "must not be whitespace alone"
    folded = password.casefold()
    if folded in common_passwords() or folded.strip() in common_passwords():
        return "is one of the most common passwords; choose another"
    local_part = email.partition("@")[0]
    if folded in {email.casefold(), local_part.casefold(), name.strip().casefold()}:
        return "must not be your email address or name"
    return None
