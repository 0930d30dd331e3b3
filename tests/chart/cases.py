"""The values check.py renders the chart with, and the values its schema must refuse."""

DATABASE = {"url": "postgres://baler:secret@postgres.databases.svc:5432/baler"}

PROJECT = {
    "name": "webform",
    "title": "Webform",
    "repo": "https://git.example.org/acme/webform.git",
    "provider": "github",
    "secret_env": "WEBFORM_HOOK_SECRET",
    "branches": ["main", "*.x"],
    "formats": ["tar.gz", "zip"],
}

# Each is rendered and checked whole.
RENDERINGS: dict[str, dict] = {
    # The chart's defaults and the one value they lack: a PostgreSQL URL.
    "defaults": {"database": DATABASE},
    # Scale-out: many web and worker pods, S3, an external PostgreSQL, secrets kept outside.
    "scale-out": {
        "web": {"replicas": 3},
        "worker": {"replicas": 5, "mirrors": {"size": "50Gi", "storageClass": "fast-ssd"}},
        "database": {"existingSecret": "baler-postgres", "key": "uri"},
        "storage": {
            "kind": "s3",
            "s3": {
                "bucket": "releases",
                "endpoint": "https://s3.eu-central-1.amazonaws.com",
                "region": "eu-central-1",
                "prefix": "baler/",
                "downloads": "redirect",
                "presignSeconds": 900,
                "existingSecret": "baler-s3",
            },
        },
        "adminToken": {"existingSecret": "baler-admin"},
        "webhookSecrets": {"existingSecret": "baler-webhooks"},
        "config": {
            "public_url": "https://releases.example.org",
            "workers": 4,
            "max_attempts": 7,
            "queue": {"lease_seconds": 90, "poll_interval_ms": 500},
            "worker": {"drain_seconds": 45},
            "http": {"trusted_proxies": ["10.0.0.0/8"], "count_downloads": True},
            "projects": [PROJECT],
        },
        "metrics": {"serviceMonitor": {"enabled": True, "interval": "30s"}},
        "signing": {"existingSecret": "baler-signing"},
    },
    # An Ingress with TLS; secrets given inline, so the chart makes the Secret; local storage
    # on a claim made outside the chart.
    "ingress": {
        "database": DATABASE,
        "adminToken": {"value": "0123456789abcdef0123456789abcdef"},
        "webhookSecrets": {"values": {"WEBFORM_HOOK_SECRET": "whsec-test"}},
        "persistence": {"existingClaim": "baler-archives"},
        "web": {
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "host": "releases.example.org",
                "tls": [{"secretName": "releases-tls"}],
                "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            }
        },
        "config": {"projects": [PROJECT]},
        "extraEnv": [{"name": "RUST_LOG", "value": "info,baler=debug"}],
        # A signing key made without a password.
        "signing": {"existingSecret": "baler-signing", "keyKey": "release.key", "passwordKey": ""},
    },
    # S3 keys given inline (into the chart's Secret); the database URL from a Secret made
    # outside; no migration hook and no disruption budgets.
    "s3-inline-keys": {
        "database": {"existingSecret": "baler-postgres"},
        "storage": {"kind": "s3", "s3": {"bucket": "releases", "accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "example"}},
        "migrate": {"enabled": False},
        "web": {"replicas": 1, "pdb": {"enabled": False}},
        "worker": {"replicas": 1, "pdb": {"enabled": False}},
        "extraEnvFrom": [{"secretRef": {"name": "baler-project-tokens"}}],
    },
}

# Each must be refused by values.schema.json (over the chart's defaults).
REFUSED: dict[str, dict] = {
    "no database at all (pods cannot share SQLite)": {},
    "storage.kind ftp": {"database": DATABASE, "storage": {"kind": "ftp"}},
    "web.replicas as a word": {"database": DATABASE, "web": {"replicas": "two"}},
    "web.replicas as a fraction": {"database": DATABASE, "web": {"replicas": 2.5}},
    "worker.replicas below zero": {"database": DATABASE, "worker": {"replicas": -1}},
    "an unknown top-level key": {"database": DATABASE, "replicaCount": 2},
    "an unknown key in web.ingress": {"database": DATABASE, "web": {"ingress": {"hostname": "x.org"}}},
    "s3 without a bucket": {"database": DATABASE, "storage": {"kind": "s3", "s3": {"region": "eu-central-1"}}},
    "image.pullPolicy Sometimes": {"database": DATABASE, "image": {"pullPolicy": "Sometimes"}},
    "a MySQL database URL": {"database": {"url": "mysql://baler@db/baler"}},
    "an admin token baler would refuse": {"database": DATABASE, "adminToken": {"value": "short"}},
    "config.listen (the chart's own)": {"database": DATABASE, "config": {"listen": "0.0.0.0:1"}},
    "config.admin_token (a secret in a ConfigMap)": {"database": DATABASE, "config": {"admin_token": "x" * 32}},
    "config.signing (the chart's own: signing.existingSecret)": {"database": DATABASE, "config": {"signing": {"minisign_key_file": "/k"}}},
    "an unknown key in signing": {"database": DATABASE, "signing": {"existingSecret": "s", "key": "baler.key"}},
    "a project secret in the ConfigMap": {"database": DATABASE, "config": {"projects": [dict(PROJECT, secret="plain")]}},
    "an ingress without a host": {"database": DATABASE, "web": {"ingress": {"enabled": True}}},
    "a mirror size that is no quantity": {"database": DATABASE, "worker": {"mirrors": {"size": "ten gigs"}}},
    "a webhook secret variable with a dash": {"database": DATABASE, "webhookSecrets": {"values": {"BAD-NAME": "x"}}},
    "an S3 key id without its secret": {
        "database": DATABASE,
        "storage": {"kind": "s3", "s3": {"bucket": "b", "accessKeyId": "AKIA"}},
    },
}

# What the chart's TOML writer must keep exactly (Helm's toToml writes 3 as 3.0, which baler
# refuses). Not baler settings: the writer is checked on its own.
TRICKY_CONFIG = {
    "workers": 3,
    "big": 3_000_000_000,
    "negative": -5,
    "ratio": 0.25,
    "flag": False,
    "text": 'say "hi" \\ back\nslash\ttab, ünïcode <&> \u2028',
    "empty_list": [],
    "mixed": [1, "two", 3.5],
    "tables": [{"b": 2, "a": "x"}, {"c": [1, 2]}],
    "needs quotes.key": "dotted",
    "gone": None,
    "outer": {"scalar": 1, "inner": {"deep": {"deepest": "yes"}}, "after": "still outer"},
    "projects": [
        {"name": "one", "branches": ["main"], "nested": {"k": 1}},
        {"name": "two", "tags": ["v*"]},
    ],
}
