"""herald's REST API: clients, mailings, statistics, API keys, and the outbox relay."""
