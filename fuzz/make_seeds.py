#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/ from the repository's fixtures.
Run from the repository root: python3 fuzz/make_seeds.py"""
import hashlib, hmac, io, json, os, zipfile
from pathlib import Path

from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as apad
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
SNAPSHOTS = [ROOT / "examples" / "sample-snapshot", ROOT.parent / "shared" / "conformance" / "sunbird-lern" / "snapshot"]
TABLES = ["course_batch", "user_enrolments", "assessment_aggregator", "user_activity_agg",
          "content", "content_hierarchy", "relation_cache", "user_cache"]


def put(target, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def lines(table, n):
    out = []
    for snap in SNAPSHOTS:
        p = snap / f"{table}.jsonl"
        if p.exists():
            out += [l for l in p.read_bytes().splitlines() if l.strip()][:n]
    return out


# snapshot_lines: the table's index byte, then one line.
for i, t in enumerate(TABLES):
    for line in lines(t, 3):
        put("snapshot_lines", bytes([i]) + line)

# hierarchy: the hierarchy text of each content_hierarchy line (small ones).
for line in lines("content_hierarchy", 4):
    h = json.loads(line).get("hierarchy")
    text = h if isinstance(h, str) else json.dumps(h)
    if len(text) < 20000:
        put("hierarchy", text)

# request_data and processed_batches.
for rd in [{"batchId": "batch-001"}, {"batchFilter": ["b1", "b2", "b1"]},
           {"searchFilter": {"request": {"filters": {"status": ["Live"]}, "limit": 10}}},
           {"batchFilter": []}, {"type": "progress-exhaust", "batchFilter": ["b1"], "outputFormat": "parquet"}]:
    put("request_data", json.dumps(rd))
put("request_data", json.dumps([{"batchId": "b1", "filePath": "progress-exhaust/r1/b1_20240115.csv", "fileSize": 1024}]))

# submit_body: a channel byte, then the body the API tests send.
for cfg, fmt, key in [({"batchId": "batch-001"}, "csv", None), ({"batchFilter": ["b1", "b2"]}, "parquet", "k3y"),
                      ({"searchFilter": {"request": {"filters": {}}}}, None, None)]:
    req = {"tag": "tag-1", "requestedBy": "user-1", "dataset": "progress-exhaust", "datasetConfig": cfg}
    if fmt:
        req["outputFormat"] = fmt
    if key:
        req["encryptionKey"] = key
    body = {"id": "ekstep.analytics.dataset.request.submit", "ver": "1.0",
            "ts": "2024-01-15T10:00:00.000+00:00", "params": {"msgid": "4406df37"}, "request": req}
    put("submit_body", b"\x02" + json.dumps(body).encode())

# envelope: valid envelopes (text key "fuzz-text-key" with choice byte 0,
# the test-only RSA key with choice byte 1), damaged ones, stored keys.
def aes_cbc(key, data):
    p = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key), modes.CBC(b"\0" * 16)).encryptor()
    return enc.update(p.update(data) + p.finalize()) + enc.finalize()

import base64
file_key = bytes(range(32))
body = aes_cbc(file_key, b"Batch ID,User ID\nb1,u1\n")
text_kek = hashlib.md5(b"fuzz-text-key").hexdigest().upper().encode()
put("envelope", b"\x00TEXT_KEY_ENCRYPTED_DATASET\n" + base64.b64encode(aes_cbc(text_kek, file_key)) + b"\n" + body)
pub = serialization.load_pem_public_key((ROOT / "exhaust-writer/tests/fixtures/test-only-org-public.pem").read_bytes())
wrapped = pub.encrypt(file_key, apad.PKCS1v15())
put("envelope", b"\x01PUBLIC_KEY_ENCRYPTED_DATASET\n" + base64.b64encode(wrapped) + b"\n" + body)
put("envelope", b"\x00TEXT_KEY_ENCRYPTED_DATASET\n\n")
put("envelope", b"\x00PLAIN_DATASET\n")

# decrypt_zip: one stored entry, one deflated, an empty zip, two entries.
def z(entries, method):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as f:
        for name, data in entries:
            f.writestr(name, data)
    return buf.getvalue()

put("decrypt_zip", z([("b1_20240115.csv", "Batch ID,User ID\nb1,u1\n")], zipfile.ZIP_STORED))
put("decrypt_zip", z([("b1_20240115.csv", "Batch ID,User ID\n" * 20)], zipfile.ZIP_DEFLATED))
put("decrypt_zip", z([], zipfile.ZIP_STORED))
put("decrypt_zip", z([("dir/", ""), ("a.csv", "x"), ("b.csv", "y")], zipfile.ZIP_DEFLATED))

# download_token: tokens signed with the target's secret (a key, a dot, an
# expiry in epoch seconds, a dot, the HMAC-SHA256 of "key\nexpiry", base64url
# without padding): valid until 2030, expired, tampered; and stored
# download_urls entries as object_key cuts them.
def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def token(key, expires, secret=b"exhaust-fuzz-download-secret"):
    sig = hmac.new(secret, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
    return f"{b64(key.encode())}.{expires}.{b64(sig)}"

for key in ["progress-exhaust/0F3E5294071408051B40AD6802EA18ED/batch-001_progress_20240115.zip",
            "progress-exhaust/b_progress_1.zip", "a"]:
    put("download_token", token(key, 1893456000))
put("download_token", token("progress-exhaust/R/b.zip", 1700000000))
put("download_token", token("progress-exhaust/R/b.zip", 1893456000, b"another-secret-entirely"))
put("download_token", "https://acct.blob.core.windows.net/reports/progress-exhaust/R/b.zip")
put("download_token", "wasb://reports@acct.blob.core.windows.net/progress-exhaust/R/b x\"y\".zip")

# Dictionaries (fuzz/dicts/<target>.dict, given to libFuzzer by fuzz/run):
# every JSON key and short string value of the seeds, quoted as they appear,
# so mutations reach the fields the parsers look for instead of guessing
# names byte by byte.
def strings(value, out):
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(k)
            strings(v, out)
    elif isinstance(value, list):
        for v in value:
            strings(v, out)
    elif isinstance(value, str) and len(value) <= 40:
        out.add(value)


def json_strings(data):
    out = set()
    for line in data.splitlines():
        try:
            strings(json.loads(line), out)
        except (ValueError, UnicodeDecodeError):
            pass
    return out


DICTS = ROOT / "fuzz" / "dicts"
DICTS.mkdir(exist_ok=True)
for target in ["hierarchy", "request_data", "submit_body", "snapshot_lines"]:
    words = set()
    for seed in sorted((CORPUS / target).iterdir()):
        data = seed.read_bytes()
        if target in ("submit_body", "snapshot_lines"):
            data = data[1:]  # the choice byte
        words |= json_strings(data)
        if target == "snapshot_lines":
            # user_cache values and hierarchy texts nest JSON inside strings
            for w in list(words):
                if w.startswith("{") or w.startswith("["):
                    words |= json_strings(w.encode())
    entries = sorted(w for w in words if w and "\\" not in w and '"' not in w and w.isprintable())
    text = "".join('"\\"%s\\""\n' % w for w in entries)
    (DICTS / f"{target}.dict").write_text(text)
