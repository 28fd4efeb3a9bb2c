"""Stand-ins for outside services, run as real HTTP servers in tests and local demos (never in production)."""
