"""The transactional outbox: events written with each change, and the relay that publishes them."""
