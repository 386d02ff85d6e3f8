"""fhir: resources (encrypted), their versions, blind-index tokens and the vitals time series.

Revision ID: 0002
Revises: 0001

Only non-identifying search columns are plaintext (resource ids, Observation codes, categories,
effective times, gender, compartment patient id). Everything identifying lives in ``body``
(AES-256-GCM) and is searchable only through HMAC digests in ``fhir_token``. See docs/fhir.md.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE fhir_resource (
    resource_type text NOT NULL,
    id text NOT NULL,
    version integer NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    last_updated timestamptz NOT NULL,
    patient_id text,
    code text,
    codes text[],
    categories text[],
    effective_start timestamptz,
    effective_end timestamptz,
    gender text,
    key_id text NOT NULL,
    body bytea,
    PRIMARY KEY (resource_type, id),
    CHECK (deleted OR body IS NOT NULL)
);
CREATE INDEX fhir_resource_updated ON fhir_resource (resource_type, last_updated, id);
CREATE INDEX fhir_resource_obs_patient
    ON fhir_resource (patient_id, effective_start, id) WHERE resource_type = 'Observation';
CREATE INDEX fhir_resource_obs_lastn
    ON fhir_resource (patient_id, code, effective_start DESC) WHERE resource_type = 'Observation';
CREATE INDEX fhir_resource_codes ON fhir_resource USING gin (codes);
CREATE INDEX fhir_resource_key ON fhir_resource (key_id);

CREATE TABLE fhir_resource_version (
    resource_type text NOT NULL,
    id text NOT NULL,
    version integer NOT NULL,
    deleted boolean NOT NULL,
    last_updated timestamptz NOT NULL,
    key_id text NOT NULL,
    body bytea,
    PRIMARY KEY (resource_type, id, version),
    CHECK (deleted OR body IS NOT NULL)
);
CREATE INDEX fhir_resource_version_updated ON fhir_resource_version (resource_type, last_updated);
CREATE INDEX fhir_resource_version_key ON fhir_resource_version (key_id);

CREATE TABLE fhir_token (
    resource_type text NOT NULL,
    id text NOT NULL,
    kind text NOT NULL,
    digest bytea NOT NULL
);
-- Digests are keyed per kind (the kind is inside the HMAC), so the digest alone selects.
CREATE INDEX fhir_token_lookup ON fhir_token (digest) INCLUDE (resource_type, id);
CREATE INDEX fhir_token_owner ON fhir_token (resource_type, id);

CREATE TABLE fhir_vital (
    patient_id text NOT NULL,
    code text NOT NULL,
    effective timestamptz NOT NULL,
    value double precision NOT NULL,
    unit text,
    observation_id text NOT NULL
);
"""

# TimescaleDB when the server offers it and preloads it; otherwise a plain table with BRIN on time
# (rows arrive roughly in time order, so BRIN stays tiny) and a btree for the per-patient,
# per-code range scans that $lastn/$stats/search do. shared_preload_libraries is read first:
# CREATE EXTENSION on a server that has the files but did not preload the library raises FATAL,
# which ends the session (no exception block can catch it) and so the whole migration.
VITALS_STORAGE = """
DO $$
DECLARE
  has_tsdb boolean := false;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
     AND current_setting('shared_preload_libraries') ~ '(^|[\\s,"])timescaledb([\\s,"]|$)' THEN
    BEGIN
      CREATE EXTENSION IF NOT EXISTS timescaledb;
      has_tsdb := true;
    EXCEPTION WHEN OTHERS THEN
      RAISE NOTICE 'timescaledb available but not loadable: %', SQLERRM;
    END;
  ELSIF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
    RAISE NOTICE 'timescaledb available but not in shared_preload_libraries: plain table';
  END IF;
  IF has_tsdb THEN
    EXECUTE $q$SELECT create_hypertable('fhir_vital', 'effective',
                                        chunk_time_interval => interval '7 days')$q$;
  ELSE
    CREATE INDEX fhir_vital_time_brin ON fhir_vital USING brin (effective);
  END IF;
  INSERT INTO service_capability (name, enabled, detail)
  VALUES ('timescaledb', has_tsdb, CASE WHEN has_tsdb THEN 'hypertable fhir_vital'
                                         ELSE 'plain table + BRIN' END)
  ON CONFLICT (name) DO UPDATE SET enabled = EXCLUDED.enabled, detail = EXCLUDED.detail,
                                   detected_at = now();
END $$;
CREATE INDEX fhir_vital_series ON fhir_vital (patient_id, code, effective DESC) INCLUDE (value);
CREATE INDEX fhir_vital_observation ON fhir_vital (observation_id);
"""

# The application role owns nothing and gets only the DML it uses. History rows are immutable
# except for re-encryption (key_id, body) by `healthstack keys rotate`.
GRANTS = """
GRANT SELECT, INSERT, UPDATE ON fhir_resource TO healthstack_app;
GRANT SELECT, INSERT ON fhir_resource_version TO healthstack_app;
GRANT UPDATE (key_id, body) ON fhir_resource_version TO healthstack_app;
GRANT SELECT, INSERT, DELETE ON fhir_token TO healthstack_app;
GRANT SELECT, INSERT, DELETE ON fhir_vital TO healthstack_app;
"""


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(VITALS_STORAGE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS fhir_vital, fhir_token, fhir_resource_version, fhir_resource")
    op.execute("DELETE FROM service_capability WHERE name = 'timescaledb'")
