"""Alembic environment: backbone always hands Alembic a connection (or, for --sql
rendering, a URL); nothing here reads alembic.ini or the process environment."""
from alembic import context

from backbone.migrate.schema import metadata

config = context.config


def run_offline() -> None:
    context.configure(url=config.attributes["url"], target_metadata=metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"}, starting_rev=config.attributes.get("starting_rev"))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
