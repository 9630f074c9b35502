"""Make the ledger append-only in the database itself: any UPDATE of a ledger row is refused.

Deletes stay possible only so that deleting a workspace can cascade to its ledger.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION accounts_ledger_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only (entry %)', OLD.id;
END;
$$;
CREATE TRIGGER accounts_ledger_append_only BEFORE UPDATE ON accounts_app_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION accounts_ledger_refuse_update();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS accounts_ledger_append_only ON accounts_app_ledgerentry;
DROP FUNCTION IF EXISTS accounts_ledger_refuse_update();
"""


class Migration(migrations.Migration):
    dependencies = [("accounts_app", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
