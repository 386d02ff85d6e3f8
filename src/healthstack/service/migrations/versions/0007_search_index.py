"""search index: every R4 search parameter of every type, one table per value kind (issue 13).

Revision ID: 0007
Revises: 0006

Rows are extracted at write time from the official SearchParameter expressions
(``healthstack.fhir.extract``). Plain tables hold only what ``healthstack.fhir.phi`` allows in
clear (codes, references, clinical dates, quantities, strings of definitional types); identifying
values stay HMAC digests in ``fhir_token``. ``compartment`` lists the patients whose compartment
holds the resource (official Patient CompartmentDefinition), for patient-context tokens.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = """
ALTER TABLE fhir_resource ADD COLUMN compartment text[];
UPDATE fhir_resource SET compartment = ARRAY[patient_id] WHERE patient_id IS NOT NULL;
CREATE INDEX fhir_resource_compartment ON fhir_resource USING gin (compartment);

CREATE TABLE fhir_search_token (
    resource_type text NOT NULL, id text NOT NULL, param text NOT NULL,
    system text, code text NOT NULL
);
CREATE INDEX fhir_search_token_lookup
    ON fhir_search_token (resource_type, param, code) INCLUDE (system, id);
CREATE INDEX fhir_search_token_owner ON fhir_search_token (resource_type, id);

CREATE TABLE fhir_search_string (
    resource_type text NOT NULL, id text NOT NULL, param text NOT NULL,
    normalized text NOT NULL, exact text NOT NULL
);
CREATE INDEX fhir_search_string_lookup
    ON fhir_search_string (resource_type, param, normalized text_pattern_ops) INCLUDE (id);
CREATE INDEX fhir_search_string_owner ON fhir_search_string (resource_type, id);

CREATE TABLE fhir_search_date (
    resource_type text NOT NULL, id text NOT NULL, param text NOT NULL,
    low timestamptz NOT NULL, high timestamptz NOT NULL
);
CREATE INDEX fhir_search_date_low ON fhir_search_date (resource_type, param, low) INCLUDE (high, id);
CREATE INDEX fhir_search_date_high ON fhir_search_date (resource_type, param, high) INCLUDE (low, id);
CREATE INDEX fhir_search_date_owner ON fhir_search_date (resource_type, id);

CREATE TABLE fhir_search_number (
    resource_type text NOT NULL, id text NOT NULL, param text NOT NULL,
    value numeric NOT NULL, system text, code text
);
CREATE INDEX fhir_search_number_lookup
    ON fhir_search_number (resource_type, param, value) INCLUDE (system, code, id);
CREATE INDEX fhir_search_number_owner ON fhir_search_number (resource_type, id);

CREATE TABLE fhir_search_reference (
    resource_type text NOT NULL, id text NOT NULL, param text NOT NULL,
    target_type text, target text NOT NULL
);
CREATE INDEX fhir_search_reference_lookup
    ON fhir_search_reference (resource_type, param, target) INCLUDE (target_type, id);
-- _revinclude and chains walk references backwards: which resources point at this one.
CREATE INDEX fhir_search_reference_target ON fhir_search_reference (target, target_type);
CREATE INDEX fhir_search_reference_owner ON fhir_search_reference (resource_type, id);
"""

GRANTS = """
GRANT SELECT, INSERT, DELETE ON fhir_search_token, fhir_search_string, fhir_search_date,
    fhir_search_number, fhir_search_reference TO healthstack_app;
"""


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(
        "DROP TABLE IF EXISTS fhir_search_token, fhir_search_string, fhir_search_date, "
        "fhir_search_number, fhir_search_reference"
    )
    op.execute("ALTER TABLE fhir_resource DROP COLUMN IF EXISTS compartment")
