"""The reporter's SQL: the day's figures read from the ledger, and the report claims."""
