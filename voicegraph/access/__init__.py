"""Who may call the service and how much: API keys and per-key rate limits."""
