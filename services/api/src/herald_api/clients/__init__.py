"""The client directory: CRUD, listing and bulk import."""
