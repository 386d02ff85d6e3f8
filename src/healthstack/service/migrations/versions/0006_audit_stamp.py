"""audit stamp: the database stamps each record's time and validates what the caller may set;
history rows become append-only for the service role; re-sealed break-glass reasons.

Revision ID: 0006
Revises: 0005

* ``audit_stamp`` (issue 12 item 13): the application role could append a record dated 2020 that
  verified intact, because ``audit_append`` took ``time`` from the caller. Now the function
  replaces ``time`` with ``clock_timestamp()`` and refuses content that is not a JSON object of the
  known fields with values of the right types and sizes. Records already written are unchanged.
* ``fhir_resource_version`` (item 5): the service role keeps SELECT and INSERT only; re-encryption
  by ``healthstack keys rotate`` runs as the schema owner (MIGRATION_DATABASE_URL).
* ``audit_reason`` (item 18): break-glass reasons re-sealed under the current key by
  ``keys rotate``, beside the immutable chained record, so a retired key never makes a reason
  unreadable. Written only by the owner; the service role reads it.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CHAINS = 64  # healthstack.security.chain.CHAINS
FIELDS = ("interaction", "outcome", "subject", "client_id", "resource_type", "resource_id",
          "version", "query", "source_ip", "request_id", "trace_id", "break_glass_reason",
          "detail", "time")  # fmt: skip
TEXT_FIELDS = ("subject", "client_id", "resource_type", "resource_id", "source_ip", "request_id",
               "trace_id", "break_glass_reason", "detail")  # fmt: skip
OUTCOMES = ("success", "denied", "unauthenticated", "failed", "error")


def _array(items: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(f"'{i}'" for i in items) + "]"


STAMP = f"""
CREATE FUNCTION audit_stamp(content text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    doc jsonb;
    k text;
BEGIN
    doc := content::jsonb;
    IF jsonb_typeof(doc) <> 'object' THEN
        RAISE EXCEPTION 'audit record: not a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR k IN SELECT jsonb_object_keys(doc) LOOP
        IF NOT k = ANY({_array(FIELDS)}) THEN
            RAISE EXCEPTION 'audit record: unknown field' USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    IF coalesce(doc->>'interaction', '') !~ '^[a-z][a-z$-]{{0,39}}$'
       OR NOT coalesce(doc->>'outcome', '') = ANY({_array(OUTCOMES)}) THEN
        RAISE EXCEPTION 'audit record: bad interaction or outcome'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH k IN ARRAY {_array(TEXT_FIELDS)} LOOP
        IF doc ? k AND (jsonb_typeof(doc->k) <> 'string' OR length(doc->>k) > 4096) THEN
            RAISE EXCEPTION 'audit record: field % must be a string', k
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    IF length(coalesce(doc->>'subject', '')) > 256 OR coalesce(doc->>'subject', '') ~ '[[:cntrl:]]'
       OR (doc ? 'version' AND jsonb_typeof(doc->'version') <> 'number')
       OR (doc ? 'query' AND jsonb_typeof(doc->'query') <> 'object') THEN
        RAISE EXCEPTION 'audit record: bad subject, version or query'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The database's clock, not the caller's: no backdated (or postdated) records.
    RETURN (doc || jsonb_build_object('time', to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                                     'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')))::text;
END $$;
REVOKE ALL ON FUNCTION audit_stamp(text) FROM PUBLIC;
"""

_CLAIM = f"""
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
    END IF;"""

_LINK = """
        stamped := audit_stamp(raw);
        doc := stamped::jsonb;
        UPDATE audit_chain
        SET seq = seq + 1,
            head = sha256(head || int2send(c) || int8send(seq + 1) || convert_to(stamped, 'UTF8'))
        WHERE chain_id = c
        RETURNING seq, head INTO s, h;
        INSERT INTO audit_log (chain_id, seq, hash, content, recorded_at, interaction, outcome,
                               subject, client_id, resource_type, resource_id, break_glass,
                               request_id)
        VALUES (c, s, h, stamped, (doc->>'time')::timestamptz, doc->>'interaction',
                doc->>'outcome', doc->>'subject', doc->>'client_id', doc->>'resource_type',
                doc->>'resource_id', doc ? 'break_glass_reason', doc->>'request_id');"""

APPEND = f"""
CREATE OR REPLACE FUNCTION audit_append(hint integer, content text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    c smallint := hint % {CHAINS};
    s bigint;
    h bytea;
    raw text := content;
    stamped text;
    doc jsonb;
BEGIN{_CLAIM}
    BEGIN{_LINK}
    END;
END $$;

CREATE OR REPLACE FUNCTION audit_append_many(hint integer, contents text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    c smallint := hint % {CHAINS};
    s bigint;
    h bytea;
    raw text;
    stamped text;
    doc jsonb;
BEGIN
    IF coalesce(cardinality(contents), 0) = 0 THEN
        RETURN;
    END IF;
    IF array_position(contents, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'audit_append_many: contents must not contain NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;{_CLAIM}
    FOREACH raw IN ARRAY contents LOOP{_LINK}
    END LOOP;
END $$;
"""

HISTORY_AND_REASONS = """
REVOKE UPDATE ON fhir_resource_version FROM healthstack_app;
CREATE TABLE audit_reason (
    chain_id smallint NOT NULL,
    seq bigint NOT NULL,
    key_id text NOT NULL,
    ciphertext bytea NOT NULL,
    resealed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, seq)
);
REVOKE ALL ON audit_reason FROM PUBLIC;
GRANT SELECT ON audit_reason TO healthstack_app;
"""


def upgrade() -> None:
    op.execute(STAMP)
    op.execute(APPEND)
    op.execute(HISTORY_AND_REASONS)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS audit_reason")
    op.execute("GRANT UPDATE (key_id, body) ON fhir_resource_version TO healthstack_app")
    op.execute("DROP FUNCTION IF EXISTS audit_stamp(text) CASCADE")
