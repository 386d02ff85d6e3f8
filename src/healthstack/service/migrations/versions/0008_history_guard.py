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


def _guard(table: str, name: str, refuse_when: str, what: str) -> str:
    """A row trigger (UPDATE/DELETE) refusing ``refuse_when``, and a TRUNCATE guard, on ``table``."""
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR {refuse_when} THEN
        RAISE EXCEPTION '{what}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER {table}_reseal_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {name}();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
"""


VERSION_CHANGED = """(NEW.resource_type, NEW.id, NEW.version, NEW.deleted, NEW.last_updated)
       IS DISTINCT FROM (OLD.resource_type, OLD.id, OLD.version, OLD.deleted, OLD.last_updated)
       OR (NEW.body IS NULL) <> (OLD.body IS NULL)"""
GUARDS = (
    _guard("fhir_resource_version", "fhir_version_reseal_only", VERSION_CHANGED,
           "version history is append-only, only key_id/body may be re-sealed")
    + _guard("audit_reason", "audit_reason_reseal_only",
             "NEW.chain_id <> OLD.chain_id OR NEW.seq <> OLD.seq",
             "re-sealed audit reasons may only be re-sealed again")
)  # fmt: skip


def upgrade() -> None:
    op.execute(GUARDS)


def downgrade() -> None:
    for table in ("fhir_resource_version", "audit_reason"):
        for suffix in ("reseal_only", "no_truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_{suffix} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS fhir_version_reseal_only()")
    op.execute("DROP FUNCTION IF EXISTS audit_reason_reseal_only()")
