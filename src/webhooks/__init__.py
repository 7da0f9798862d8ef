"""Webhooks: subscriptions to the global feed, delivered signed, in order, at least once."""
