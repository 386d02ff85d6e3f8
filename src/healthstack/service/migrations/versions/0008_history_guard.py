"""history guard: even the schema owner may only re-seal version rows and re-sealed reasons.

Revision ID: 0008
Revises: 0007

0006 made ``fhir_resource_version`` append-only for the service role (issue 12 item 5). The owner
(migrations, ``keys rotate``) still needs to swap a version's ``key_id``/``body`` and to upsert
``audit_reason`` copies, but nothing else: these triggers refuse, for every role, changing what a
version *is* (type, id, number, deleted flag, time, tombstone or not) and moving or deleting a
re-sealed reason. A deliberate erasure needs the trigger disabled by the owner, as for the trail.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

GUARDS = """
CREATE FUNCTION fhir_version_reseal_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE'
       OR (NEW.resource_type, NEW.id, NEW.version, NEW.deleted, NEW.last_updated)
          IS DISTINCT FROM (OLD.resource_type, OLD.id, OLD.version, OLD.deleted, OLD.last_updated)
       OR (NEW.body IS NULL) <> (OLD.body IS NULL) THEN
        RAISE EXCEPTION 'version history is append-only: % refused (only key_id/body re-sealing)',
            TG_OP USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fhir_version_append_only BEFORE UPDATE OR DELETE ON fhir_resource_version
    FOR EACH ROW EXECUTE FUNCTION fhir_version_reseal_only();
CREATE TRIGGER fhir_version_no_truncate BEFORE TRUNCATE ON fhir_resource_version
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

CREATE FUNCTION audit_reason_reseal_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.chain_id <> OLD.chain_id OR NEW.seq <> OLD.seq THEN
        RAISE EXCEPTION 're-sealed audit reasons may only be re-sealed again: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_reason_append_only BEFORE UPDATE OR DELETE ON audit_reason
    FOR EACH ROW EXECUTE FUNCTION audit_reason_reseal_only();
CREATE TRIGGER audit_reason_no_truncate BEFORE TRUNCATE ON audit_reason
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
"""


def upgrade() -> None:
    op.execute(GUARDS)


def downgrade() -> None:
    for trigger, table in (("fhir_version_append_only", "fhir_resource_version"),
                           ("fhir_version_no_truncate", "fhir_resource_version"),
                           ("audit_reason_append_only", "audit_reason"),
                           ("audit_reason_no_truncate", "audit_reason")):  # fmt: skip
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS fhir_version_reseal_only()")
    op.execute("DROP FUNCTION IF EXISTS audit_reason_reseal_only()")
