"""What the operator sees: the start-up banner, the per-request log line, `corral doctor`."""
