"""Install pgvector in the database; every embedding column in the project depends on this migration."""

from django.db import migrations
from pgvector.django import VectorExtension


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []

    operations = [VectorExtension()]
