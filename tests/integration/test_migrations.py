"""Migrations run down and up again, and the models match what they create."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from herald_common.db import migrate
from herald_common.db.models import Base


def test_migrations_down_and_up_match_models(database_server_url: str) -> None:
    from sqlalchemy.engine import make_url

    url = (
        make_url(database_server_url)
        .set(database="herald_test_migrations")
        .render_as_string(hide_password=False)
    )
    migrate.drop_database(url)
    migrate.create_database_if_missing(url)
    try:
        migrate.upgrade(url)
        migrate.downgrade(url, "base")
        engine = create_engine(url)
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == {"alembic_version"}
        migrate.upgrade(url)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
            tables = set(inspect(connection).get_table_names())
        engine.dispose()
        assert {
            "clients",
            "mailings",
            "messages",
            "mailing_counters",
            "outbox",
            "api_keys",
        } <= tables
    finally:
        migrate.drop_database(url)
