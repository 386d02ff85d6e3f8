"""smart jti: client assertion ids seen by the token endpoint (SMART Backend Services replay guard).

Revision ID: 0009
Revises: 0008

RFC 7523 section 3 lets a server refuse a ``jti`` it has seen; SMART Backend Services requires it.
The table lives in the database so every replica refuses the replay; a row is only needed until
the assertion expires (``expires_at``), after which the ``exp`` check refuses it anyway, so the
service deletes expired rows (INSERT, DELETE and SELECT only: nothing else).
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE smart_assertion_jti (
    client_id text NOT NULL CHECK (length(client_id) <= 128),
    jti text NOT NULL CHECK (length(jti) <= 256),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX smart_assertion_jti_expiry ON smart_assertion_jti (expires_at);
GRANT SELECT, INSERT, DELETE ON smart_assertion_jti TO healthstack_app;
""")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS smart_assertion_jti")
