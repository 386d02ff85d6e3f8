"""console review: the auditor's review of each break-glass use (issue 19).

Revision ID: 0011
Revises: 0009

One row per reviewed break-glass record of ``audit_log``. A review is final: the service role may
SELECT and INSERT, never UPDATE or DELETE (the primary key refuses a second review). The note is
free text an auditor typed, which may name a patient, so it is stored only as AES-GCM ciphertext
under the PHI keyring (``note_key`` = key id), bound to its record like a re-sealed reason. The
act of reviewing is itself an audit record (interaction ``review``) written in the same
transaction. No foreign key to ``audit_log``: the trail's own guards (TRUNCATE refused by its
trigger, archiving by the owner) must not change behaviour because a review exists; the console
checks that the record exists and is a break-glass use before inserting.
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE audit_review (
    chain_id smallint NOT NULL,
    seq bigint NOT NULL,
    reviewer text NOT NULL CHECK (length(reviewer) <= 256),
    note_key text NOT NULL CHECK (length(note_key) <= 64),
    note bytea NOT NULL CHECK (length(note) <= 8192),
    reviewed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (chain_id, seq)
);
GRANT SELECT, INSERT ON audit_review TO healthstack_app;
""")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS audit_review")
