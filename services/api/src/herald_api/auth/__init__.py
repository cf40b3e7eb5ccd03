"""API keys: how integrators authenticate to /api/v1."""
