"""Alembic environment: always run from code (`storage.db.init_db`), on the caller's connection."""

from alembic import context

from storage.models import Base

connection = context.config.attributes["connection"]
# render_as_batch: SQLite cannot ALTER most things, so future migrations copy-and-move tables instead.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
