"""The mixed ``guardrails`` list, converted into ``input_guardrails`` and ``output_guardrails`` by 0004."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("agents_app", "0004_spec_names")]

    operations = [migrations.RemoveField("agent", "guardrails")]
