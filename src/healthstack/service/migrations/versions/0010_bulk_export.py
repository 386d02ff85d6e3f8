"""bulk export: Bulk Data Access 2.0 ``$export`` jobs and their sealed output files (issue 16).

Revision ID: 0010
Revises: 0009

A job row holds no PHI: who asked (subject and client id, scopes), what kind of export, the
validated parameters (type names, an instant, token filters) and its state. ``lease_until`` lets
another replica take over a job whose runner died (``FOR UPDATE SKIP LOCKED`` claims). Output
rows name files whose content is sealed under the PHI keyring (docs/bulk.md); a file is deleted
with its row when the export expires or is cancelled.
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE bulk_export (
    id uuid PRIMARY KEY,
    subject text NOT NULL CHECK (length(subject) <= 256),
    client_id text CHECK (length(client_id) <= 256),
    principal jsonb NOT NULL,
    kind text NOT NULL CHECK (kind IN ('system', 'patient', 'group')),
    group_id text CHECK (length(group_id) <= 64),
    params jsonb NOT NULL,
    base_url text NOT NULL CHECK (length(base_url) <= 512),
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'complete', 'failed', 'cancelled', 'expired')),
    progress text NOT NULL DEFAULT '' CHECK (length(progress) <= 200),
    error text CHECK (length(error) <= 500),
    created_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    finished_at timestamptz,
    expires_at timestamptz
);
CREATE INDEX bulk_export_queue ON bulk_export (created_at) WHERE status IN ('queued', 'running');
CREATE INDEX bulk_export_requester ON bulk_export (subject, client_id)
    WHERE status IN ('queued', 'running');
CREATE INDEX bulk_export_expiry ON bulk_export (expires_at) WHERE status = 'complete';
CREATE TABLE bulk_export_file (
    export_id uuid NOT NULL REFERENCES bulk_export (id) ON DELETE CASCADE,
    name text NOT NULL CHECK (name ~ '^[A-Za-z]{1,64}(-error)?-[0-9]{1,6}\\.ndjson$'),
    resource_type text NOT NULL,
    count bigint NOT NULL CHECK (count >= 0),
    is_error boolean NOT NULL DEFAULT false,
    sealed boolean NOT NULL DEFAULT true,
    PRIMARY KEY (export_id, name)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON bulk_export TO healthstack_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON bulk_export_file TO healthstack_app;
""")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS bulk_export_file; DROP TABLE IF EXISTS bulk_export")
