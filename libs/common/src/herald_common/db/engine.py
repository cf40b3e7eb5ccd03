"""Engine and session factory. ``expire_on_commit=False``: objects stay readable after commit."""

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from herald_common.settings import HeraldSettings


def create_engine(settings: HeraldSettings, *, pool_size: int | None = None) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=2,
        pool_pre_ping=True,
        # A restarted PostgreSQL leaves dead connections behind; recycle rather than fail.
        pool_recycle=1800,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
