"""A vault in a SQL database for multi-user agent backends: one row per end user.

Each row holds one partition sealed like the file vault (AES-256-GCM, the header as associated
data), so a database dump reveals no token. Writers lock the row (``SELECT ... FOR UPDATE`` on
PostgreSQL) and also compare-and-set a version column, so concurrent workers never lose an
update. Needs SQLAlchemy (``pip install 'athkit[vault-sql]'``); it does not use
``athkit.store``, which belongs to the server side.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from athkit.client.vault.sealing import KeySource, VaultError, read_header, seal, unseal

T = TypeVar("T")
Data = dict[str, Any]
_RETRIES = 8


class SQLBackend:
    """Partitions as rows of ``table`` (created if missing) in the database at ``url``."""

    def __init__(
        self,
        url: str | sa.Engine,
        keys: KeySource | None = None,
        *,
        table: str = "athkit_agent_vault",
        vault_id: str | None = None,
    ) -> None:
        self.engine = sa.create_engine(url) if isinstance(url, str) else url
        self.keys = keys or KeySource()
        self.vault_id = vault_id or f"sql:{table}"
        metadata = sa.MetaData()
        self.table = sa.Table(
            table,
            metadata,
            sa.Column("partition", sa.String(255), primary_key=True),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("envelope", sa.LargeBinary, nullable=False),
        )
        metadata.create_all(self.engine)

    def _open(self, envelope: bytes, *, creating: bool = False) -> tuple[dict[str, Any], Data]:
        header = read_header(envelope)
        key = self.keys.key_for(header, self.vault_id, creating=creating)
        data = json.loads(unseal(envelope, key))
        if not isinstance(data, dict):
            raise VaultError("a vault row is damaged")
        return header, data

    def _seal(self, header: dict[str, Any], data: Data) -> bytes:
        key = self.keys.key_for(header, self.vault_id, creating=True)
        return seal(header, key, json.dumps(data, sort_keys=True).encode())

    def read(self, partition: str) -> Data:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(self.table.c.envelope).where(self.table.c.partition == partition)
            ).first()
        return self._open(bytes(row[0]))[1] if row is not None else {}

    def mutate(self, partition: str, change: Callable[[Data], T]) -> T:
        t = self.table
        for _ in range(_RETRIES):
            with self.engine.begin() as conn:
                row = conn.execute(
                    sa.select(t.c.version, t.c.envelope)
                    .where(t.c.partition == partition)
                    .with_for_update()
                ).first()
                if row is None:
                    header = self.keys.new_header(self.keys.choose())
                    data: Data = {}
                    version = 0
                else:
                    header, data = self._open(bytes(row[1]), creating=True)
                    version = int(row[0])
                working = copy.deepcopy(data)
                result = change(working)
                envelope = self._seal(header, working)
                if row is None:
                    try:
                        with conn.begin_nested():
                            conn.execute(
                                t.insert().values(partition=partition, version=1, envelope=envelope)
                            )
                    except IntegrityError:
                        continue  # another worker created the row first: start again
                    return result
                done = conn.execute(
                    t.update()
                    .where(t.c.partition == partition, t.c.version == version)
                    .values(version=version + 1, envelope=envelope)
                )
                if done.rowcount == 1:
                    return result
        raise VaultError(f"vault row {partition!r} kept changing under us; try again")

    def partitions(self) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.table.c.partition).order_by(self.table.c.partition))
            return [str(r[0]) for r in rows]

    def describe(self) -> dict[str, str]:
        url = self.engine.url.render_as_string(hide_password=True)
        return {
            "kind": "sql",
            "location": f"{url} table {self.table.name}",
            "encryption": "AES-256-GCM per row",
        }
