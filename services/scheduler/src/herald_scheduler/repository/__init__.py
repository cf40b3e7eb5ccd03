"""All of the scheduler's SQL: the message ledger with its counters, and mailing reads."""
