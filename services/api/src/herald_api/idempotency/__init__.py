"""Idempotency-Key on the POSTs that create: a retry gets the first response, not a twin."""
