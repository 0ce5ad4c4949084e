"""What every layer shares: the vocabulary (classes, signals, trading days, UTC time), user
errors, credential redaction, atomic writes, digests and version stamps. Imports nothing else
from ``signals``."""
