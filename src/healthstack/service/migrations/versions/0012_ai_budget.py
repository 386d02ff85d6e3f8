"""ai budget: tokens spent with the AI provider per UTC day (issue 20, docs/ai.md).

Revision ID: 0012
Revises: 0009

The per-day token budget holds for the whole deployment, not per replica: each ``$summarize``
reserves its estimate here in one conditional upsert (refused when it would pass the budget) and
settles to the provider's reported usage. One row per day, no PHI (a date and a number).
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE ai_token_budget (
    day date PRIMARY KEY,
    used bigint NOT NULL CHECK (used >= 0)
);
GRANT SELECT, INSERT, UPDATE ON ai_token_budget TO healthstack_app;
""")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ai_token_budget")
