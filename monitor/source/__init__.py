"""Sources of inference events (Kafka)."""
