"""Source mappers: pure functions from vendor payloads to CloudEvents carrying canonical objects."""
