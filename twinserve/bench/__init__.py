"""make bench: twinserve against the peers a user would pick instead."""
