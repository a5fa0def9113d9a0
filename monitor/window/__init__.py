"""Windows: event-time buckets (pure arithmetic and accumulation) and their Redis store."""
