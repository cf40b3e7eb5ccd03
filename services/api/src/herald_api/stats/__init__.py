"""Statistics: message counts per mailing, read from the per-mailing counters."""
