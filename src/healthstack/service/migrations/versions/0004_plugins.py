"""plugins: the WASM plugin registry (see docs/plugins.md).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per plugin name: name, version and sha256 identify exactly what runs. The checks keep
    # a row honest even if written by hand: the hash must be the hash of the stored bytes.
    op.execute(
        """
        CREATE TABLE plugin (
            name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
            version text NOT NULL CHECK (version ~ '^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$'),
            sha256 text NOT NULL CHECK (sha256 = encode(sha256(wasm), 'hex')),
            wasm bytea NOT NULL CHECK (octet_length(wasm) BETWEEN 8 AND 16777216),
            triggers text[] NOT NULL
                CHECK (cardinality(triggers) > 0
                       AND triggers <@ ARRAY['validate', 'derive', 'operation']::text[]),
            resource_types text[] NOT NULL CHECK (cardinality(resource_types) > 0),
            grants text[] NOT NULL DEFAULT '{}'
                CHECK (grants <@ ARRAY['clock', 'random']::text[]),
            enabled boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # Hooks look plugins up by trigger and resource type on every write.
    op.execute("CREATE INDEX plugin_triggers_idx ON plugin USING gin (triggers)")
    # The admin API runs as the application role; it never owns or alters the table.
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON plugin TO healthstack_app")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS plugin")
