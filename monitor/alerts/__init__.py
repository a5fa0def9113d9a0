"""Alerts: the rule state machine's output, the durable outbox and the sinks."""
