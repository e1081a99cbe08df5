"""How e-mail addresses and passwords are compared: one spelling for each, shared by the Core App (which
keys its per-account limits on it) and the Memory Service (which stores and looks up by it)."""

from __future__ import annotations

import unicodedata

# NFKC may expand a character up to 18-fold ("ﷺ"): input longer than this is no address, and it is
# refused by length without paying for normalising it.
MAX_EMAIL_INPUT = 1024


def normalize_email(email: str) -> str:
    """NFKC, then case-folded as a whole (local part included) and stripped, so full-width letters,
    ligatures and case variants of one address are the same account (RFC 8265 style; providers that
    treat local parts case-sensitively are vanishingly rare, dots and +tags are left alone)."""
    return unicodedata.normalize("NFKC", email).strip().casefold()


def normalize_password(password: str) -> str:
    """NFKC, as NIST SP 800-63B asks, so a password typed on another keyboard or OS still matches."""
    return unicodedata.normalize("NFKC", password)
