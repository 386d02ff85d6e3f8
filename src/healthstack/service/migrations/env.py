"""Alembic environment: plain SQL migrations run through a synchronous psycopg connection."""

from alembic import context
from sqlalchemy import create_engine, pool, text

# Every new pod's initContainer runs `healthstack db migrate`: one at a time, the rest wait and
# then find nothing to do. A session-level advisory lock is released when the connection closes.
MIGRATION_LOCK = "SELECT pg_advisory_lock(hashtext('healthstack-migrations'))"

url = context.config.get_main_option("sqlalchemy.url")
assert url, "migrate.py always sets sqlalchemy.url"
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    connection.execute(text(MIGRATION_LOCK))
    connection.commit()
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
