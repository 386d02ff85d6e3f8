"""Foundation: the application role's base privileges and the capability record.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The service connects as a role that owns nothing: it gets exactly the grants later
    # migrations give it, so it can never ALTER, DISABLE TRIGGER or TRUNCATE (see docs/audit.md).
    op.execute(
        """
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'healthstack_app') THEN
            CREATE ROLE healthstack_app NOLOGIN;
          END IF;
        END $$;
        """
    )
    op.execute("GRANT USAGE ON SCHEMA public TO healthstack_app")
    # Readiness compares the applied revision with the code's head.
    op.execute("GRANT SELECT ON alembic_version TO healthstack_app")
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS service_capability (
            name text PRIMARY KEY,
            enabled boolean NOT NULL,
            detail text NOT NULL DEFAULT '',
            detected_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("GRANT SELECT ON service_capability TO healthstack_app")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS service_capability")
