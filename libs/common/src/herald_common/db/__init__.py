"""Database access: the schema, the engine and the migrations."""
