"""RabbitMQ: topology, connections and confirmed publishing."""
