"""audit: the hash-chained, append-only audit trail (164.312(b), (c)); design in docs/audit.md.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CHAINS = 64  # healthstack.security.chain.CHAINS

TABLES = f"""
CREATE TABLE audit_chain (
    chain_id smallint PRIMARY KEY,
    seq bigint NOT NULL DEFAULT 0,
    head bytea NOT NULL
);
INSERT INTO audit_chain (chain_id, seq, head)
SELECT g, 0, sha256(convert_to('healthstack-audit-genesis/' || g, 'UTF8'))
FROM generate_series(0, {CHAINS - 1}) AS g;

CREATE TABLE audit_log (
    chain_id smallint NOT NULL,
    seq bigint NOT NULL,
    hash bytea NOT NULL,
    content text NOT NULL,
    recorded_at timestamptz NOT NULL,
    interaction text NOT NULL,
    outcome text NOT NULL,
    subject text,
    client_id text,
    resource_type text,
    resource_id text,
    break_glass boolean NOT NULL,
    request_id text,
    PRIMARY KEY (chain_id, seq)
);
CREATE INDEX audit_log_recorded_at ON audit_log (recorded_at);
CREATE INDEX audit_log_subject ON audit_log (subject, recorded_at);
CREATE INDEX audit_log_entity ON audit_log (resource_type, resource_id);
"""

# One call per record. A chain is claimed with a transaction-scoped advisory lock (memory only, no
# extra tuple write): the connection's own chain first, else the next free one, else wait for its
# own. The head row update then holds the row lock until the caller's transaction ends, so seq
# order is commit order within a chain. 1096108372 is this project's advisory-lock class ("AUDT").
APPEND = f"""
CREATE FUNCTION audit_append(hint integer, content text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    c smallint := hint % {CHAINS};
    s bigint;
    h bytea;
    doc jsonb := content::jsonb;
BEGIN
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
    UPDATE audit_chain
    SET seq = seq + 1,
        head = sha256(head || int2send(c) || int8send(seq + 1) || convert_to(content, 'UTF8'))
    WHERE chain_id = c
    RETURNING seq, head INTO s, h;
    INSERT INTO audit_log (chain_id, seq, hash, content, recorded_at, interaction, outcome,
                           subject, client_id, resource_type, resource_id, break_glass, request_id)
    VALUES (c, s, h, content, (doc->>'time')::timestamptz, doc->>'interaction', doc->>'outcome',
            doc->>'subject', doc->>'client_id', doc->>'resource_type', doc->>'resource_id',
            doc ? 'break_glass_reason', doc->>'request_id');
END $$;
"""

GUARDS = """
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- A chain head only ever moves forward by one record.
CREATE FUNCTION audit_chain_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.chain_id <> OLD.chain_id OR NEW.seq <> OLD.seq + 1 THEN
        RAISE EXCEPTION 'audit chain % may only advance by one record', OLD.chain_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_chain_forward_only BEFORE UPDATE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_chain_forward();
"""

# The service role reads the trail and appends only through audit_append: no INSERT, UPDATE,
# DELETE or TRUNCATE on the tables, and (owning nothing) it cannot disable the triggers.
GRANTS = """
REVOKE ALL ON audit_log, audit_chain FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_append(integer, text) FROM PUBLIC;
GRANT SELECT ON audit_log, audit_chain TO healthstack_app;
GRANT EXECUTE ON FUNCTION audit_append(integer, text) TO healthstack_app;
"""


def upgrade() -> None:
    for block in (TABLES, APPEND, GUARDS, GRANTS):
        op.execute(block)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS audit_append(integer, text)")
    op.execute("DROP TABLE IF EXISTS audit_log")
    op.execute("DROP TABLE IF EXISTS audit_chain")
    op.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
    op.execute("DROP FUNCTION IF EXISTS audit_chain_forward()")
