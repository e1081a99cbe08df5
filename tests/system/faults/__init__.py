"""Faults: services killed, frozen, slow, misdirected or behind a lossy proxy, and the circuits and retries
that must carry users through them."""
