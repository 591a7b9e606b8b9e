#!/usr/bin/env python3
"""Decrypt a report in Sunbird's encrypted envelope, independently of exhaust.

The envelope (TEXT_KEY_ENCRYPTED_DATASET and PUBLIC_KEY_ENCRYPTED_DATASET):

    <level name>\\n
    <base64 of the wrapped 32-byte file key>\\n
    <AES-256-CBC/PKCS7 ciphertext of the CSV, zero IV>

A text key wraps the file key with AES-256-CBC/PKCS7 (zero IV) under the 32
ASCII characters of the upper-case hex MD5 of the key; a public key wraps it
with RSA PKCS#1 v1.5.

Needs only Python 3 and the `cryptography` package. The exhaust test suite
runs it against files exhaust wrote; users can run it on their reports
(unzip the .zip first):

    decrypt_envelope.py REPORT.csv --key-env REPORT_KEY --out plain.csv
    decrypt_envelope.py REPORT.csv --private-key org-private.pem > plain.csv

Exit status: 0 decrypted, 1 wrong key or damaged file, 2 bad usage.
"""

import argparse
import base64
import hashlib
import os
import sys

try:
    from cryptography.hazmat.primitives import padding, serialization
    from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError:
    sys.exit("decrypt_envelope.py needs the Python package `cryptography` (pip install cryptography)")

CHUNK = 64 * 1024
ZERO_IV = bytes(16)


class Rejected(Exception):
    """A wrong key or a damaged file."""


def unwrap_text_key(wrapped, key):
    wrapping_key = hashlib.md5(key.encode("utf-8")).hexdigest().upper().encode("ascii")
    dec = Cipher(algorithms.AES(wrapping_key), modes.CBC(ZERO_IV)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        padded = dec.update(wrapped) + dec.finalize()
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as e:
        raise Rejected("wrong key: the text key does not open this file") from e


def unwrap_private_key(wrapped, pem_path):
    with open(pem_path, "rb") as f:
        private = serialization.load_pem_private_key(f.read(), password=None)
    try:
        return private.decrypt(wrapped, asym_padding.PKCS1v15())
    except ValueError as e:
        raise Rejected("wrong key: the private key does not open this file") from e


def decrypt(src, dst, key=None, private_key=None):
    level = src.readline(65).rstrip(b"\r\n").decode("ascii", "replace")
    wrapped = base64.b64decode(src.readline(4097).strip(), validate=True)
    if level == "TEXT_KEY_ENCRYPTED_DATASET":
        if key is None:
            raise Rejected("the file is TEXT_KEY_ENCRYPTED_DATASET: give --key or --key-env")
        file_key = unwrap_text_key(wrapped, key)
    elif level == "PUBLIC_KEY_ENCRYPTED_DATASET":
        if private_key is None:
            raise Rejected("the file is PUBLIC_KEY_ENCRYPTED_DATASET: give --private-key")
        file_key = unwrap_private_key(wrapped, private_key)
    else:
        raise Rejected("not an encrypted report (first line %r)" % level)
    if len(file_key) != 32:
        raise Rejected("wrong key: the unwrapped file key is not 32 bytes")
    dec = Cipher(algorithms.AES(file_key), modes.CBC(ZERO_IV)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        while True:
            block = src.read(CHUNK)
            if not block:
                break
            dst.write(unpadder.update(dec.update(block)))
        dst.write(unpadder.update(dec.finalize()) + unpadder.finalize())
    except ValueError as e:
        raise Rejected("the body does not decrypt: a wrong key or a damaged file") from e


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("envelope", help="the encrypted CSV (the file inside the report zip)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--key", help="the text key (visible to other users: prefer --key-env)")
    g.add_argument("--key-env", metavar="VAR", help="environment variable holding the text key")
    g.add_argument("--private-key", metavar="PEM", help="the org's RSA private key file")
    p.add_argument("--out", help="where to write the CSV (default: standard output)")
    a = p.parse_args()
    key = a.key
    if a.key_env is not None:
        key = os.environ.get(a.key_env)
        if key is None:
            p.error("environment variable %s is not set" % a.key_env)
    # Write to a temporary file first: nothing is left behind on failure.
    tmp = (a.out + ".part") if a.out else None
    try:
        with open(a.envelope, "rb") as src:
            if tmp:
                with open(tmp, "wb") as dst:
                    decrypt(src, dst, key, a.private_key)
                os.replace(tmp, a.out)
            else:
                import io
                buf = io.BytesIO()
                decrypt(src, buf, key, a.private_key)
                sys.stdout.buffer.write(buf.getvalue())
    except (Rejected, ValueError) as e:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)
        print("error: %s" % e, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
