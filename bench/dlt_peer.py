"""The peer in benches/peer.rs: the same MerchantPro order list synced by dlt's `rest_api` source
into SQLite, merged on `id`, as a dlt user would write it.

Usage: dlt_peer.py BASE_URL FIRST_PATH API_KEY API_SECRET DATABASE PIPELINES_DIR

BASE_URL is the simulated shop (http://127.0.0.1:PORT); FIRST_PATH is the daemon's own first page
(`/api/v2/orders?start=0&limit=100&include=line_items&...`), so both read the same pages; pages
follow `meta.links.next` (json_link paginator), with HTTP Basic auth. The destination is dlt's
sqlalchemy destination on a SQLite file; line items land in dlt's child table
`orders__line_items`. Prints one line `DLT_RESULT {...}` with the row counts and dlt's phase
times, read back from the destination.
"""

import json
import sys
import time
from urllib.parse import parse_qsl, urlsplit

import dlt
from dlt.sources.rest_api import rest_api_source


def main() -> int:
    base_url, first_path, key, secret, database, pipelines_dir = sys.argv[1:7]
    split = urlsplit(first_path)
    source = rest_api_source(
        {
            "client": {
                "base_url": base_url,
                "auth": {"type": "http_basic", "username": key, "password": secret},
                "paginator": {"type": "json_link", "next_url_path": "meta.links.next"},
            },
            "resource_defaults": {
                "primary_key": "id",
                "write_disposition": "merge",
            },
            "resources": [
                {
                    "name": "orders",
                    "endpoint": {
                        "path": split.path.lstrip("/"),
                        "params": dict(parse_qsl(split.query)),
                        "data_selector": "data",
                    },
                }
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="merchantpro_peer",
        destination=dlt.destinations.sqlalchemy(credentials=f"sqlite:///{database}"),
        dataset_name="shop",
        pipelines_dir=pipelines_dir,
    )
    phases = {}
    began = time.monotonic()
    pipeline.extract(source)
    phases["extract_s"] = time.monotonic() - began
    t = time.monotonic()
    pipeline.normalize()
    phases["normalize_s"] = time.monotonic() - t
    t = time.monotonic()
    pipeline.load()
    phases["load_s"] = time.monotonic() - t
    counts = {}
    with pipeline.sql_client() as client:
        for table in ("orders", "orders__line_items"):
            rows = client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name(table)}")
            counts[table] = rows[0][0]
    print(
        "DLT_RESULT "
        + json.dumps(
            {
                "dlt_version": dlt.__version__,
                "orders": counts["orders"],
                "line_items": counts["orders__line_items"],
                **{k: round(v, 3) for k, v in phases.items()},
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
