"""herald's scheduler: materialises the ledger, dispatches due messages, applies outcomes."""
