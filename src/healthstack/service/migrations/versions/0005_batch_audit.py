"""batch audit: ``audit_append_many``, N chained records in one call (see docs/audit.md).

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CHAINS = 64  # healthstack.security.chain.CHAINS

# The same chain claim as audit_append (0003), once for the whole batch; then every record
# advances the head by one (the audit_chain_forward trigger still checks each step), so the
# records are chained to each other in array order exactly as N calls of audit_append would be.
# One round trip for a transaction Bundle's entries instead of one per entry.
APPEND_MANY = f"""
CREATE FUNCTION audit_append_many(hint integer, contents text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    c smallint := hint % {CHAINS};
    s bigint;
    h bytea;
    content text;
    doc jsonb;
BEGIN
    IF coalesce(cardinality(contents), 0) = 0 THEN
        RETURN;
    END IF;
    IF array_position(contents, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'audit_append_many: contents must not contain NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_try_advisory_xact_lock(1096108372, c) THEN
        FOR step IN 1..{CHAINS - 1} LOOP
            c := (hint + step) % {CHAINS};
            EXIT WHEN pg_try_advisory_xact_lock(1096108372, c);
            c := NULL;
        END LOOP;
        IF c IS NULL THEN  -- every head held: wait for the preferred one
            c := hint % {CHAINS};
            PERFORM pg_advisory_xact_lock(1096108372, c);
        END IF;
    END IF;
    FOREACH content IN ARRAY contents LOOP
        doc := content::jsonb;
        UPDATE audit_chain
        SET seq = seq + 1,
            head = sha256(head || int2send(c) || int8send(seq + 1) || convert_to(content, 'UTF8'))
        WHERE chain_id = c
        RETURNING seq, head INTO s, h;
        INSERT INTO audit_log (chain_id, seq, hash, content, recorded_at, interaction, outcome,
                               subject, client_id, resource_type, resource_id, break_glass,
                               request_id)
        VALUES (c, s, h, content, (doc->>'time')::timestamptz, doc->>'interaction',
                doc->>'outcome', doc->>'subject', doc->>'client_id', doc->>'resource_type',
                doc->>'resource_id', doc ? 'break_glass_reason', doc->>'request_id');
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION audit_append_many(integer, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_append_many(integer, text[]) TO healthstack_app;
"""


def upgrade() -> None:
    op.execute(APPEND_MANY)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS audit_append_many(integer, text[])")
