"""Alembic migrations of herald's schema: static, reviewed and reversible."""
