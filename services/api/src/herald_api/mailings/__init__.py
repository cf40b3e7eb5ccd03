"""Mailings: CRUD, listing and each mailing's message ledger."""
