"""herald's sender: delivers send commands through the external send API."""
